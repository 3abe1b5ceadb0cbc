"""``syncd console``: print a link that signs a browser in to the running daemon's console.

The link carries a one-time code (good for one sign-in, for two minutes), like Jupyter's: the
daemon issues it (``POST /api/v1/console/codes``, with the API token this command reads as
every control command does). The code is printed, never logged.
"""

from __future__ import annotations

from typing import Any

import click


def console_url(listen_url: str, base_url: str | None, path: str) -> str:
    """The link: ``--base-url`` (the address a proxy serves the console at), else the daemon's."""
    origin = (base_url or listen_url).rstrip("/")
    return origin + path


@click.command("console")
@click.option(
    "--base-url",
    metavar="URL",
    help="Where your browser reaches the console (a reverse proxy's https://host/syncd); "
    "default: the daemon's own address.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def console_command(obj: Any, base_url: str | None, as_json: bool) -> None:
    """Print a one-time sign-in link to the web console (served by `syncd run`)."""
    from syncd.daemon.commands import _client, _emit_json, talks_to_daemon

    @talks_to_daemon
    def run() -> None:
        client = _client(obj)
        data = client.call("POST", "/api/v1/console/codes")
        if base_url is not None and not base_url.startswith(("http://", "https://")):
            raise ValueError(f"--base-url must start with http:// or https://, got {base_url!r}")
        url = console_url(client.endpoint.url(), base_url, data["path"])
        if as_json:
            _emit_json({**data, "url": url})
            return
        click.echo(
            f"Open the syncd console (the link signs you in once, within "
            f"{data['expires_in_seconds'] // 60} minutes):\n\n  {url}\n"
        )
        if client.endpoint.is_unix:
            click.echo(
                "The daemon listens on a unix socket: put a reverse proxy in front of it "
                "(docs/console.md) and pass its address with --base-url."
            )

    run()
