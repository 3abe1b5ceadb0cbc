"""The image built from the real Dockerfile, run as users run it (podman with runc here)."""

from __future__ import annotations

import csv
import os
import signal
import sqlite3
import stat
import time
from collections.abc import Callable
from pathlib import Path

from image_site import UID, Site
from image_support import ROOT, Container, Images, podman, run_args, wait_until

START_PERIOD = 30  # the Dockerfile's HEALTHCHECK --start-period
#: issue 20's target, for the default (SQLite) image: PostgreSQL's driver and cryptography (30 MB)
#: are the `postgresql` extra, in the image built with --build-arg EXTRAS=postgresql
SIZE_TARGET = 150_000_000
PG_IMAGE = "localhost/syncd-postgresql:image-test"

MakeContainer = Callable[..., Container]


def _pair(site: Site, interval: str = "1h") -> None:
    site.people("a.csv", [("ann@example.com", "Ann"), ("cy@example.com", "Cy")])
    site.people("b.csv", [("bob@example.com", "Bob")])
    site.sync(
        "pair",
        f"""
        direction = "two-way"
        interval = "{interval}"
        [a]
        connector = "csv"
        path = "/csv/a.csv"
        [b]
        connector = "csv"
        path = "/csv/b.csv"
        """,
    )


def _emails(path: Path) -> set[str]:
    with path.open(newline="") as handle:
        return {row["email"] for row in csv.DictReader(handle)}


def _first_run_done(site: Site, name: str) -> bool:
    status, body = site.get(f"/api/v1/syncs/{name}")
    return status == 200 and body["last_run"] is not None and body["state"] != "running"


def _uid_gid(pid: int) -> tuple[int, int]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    uid = next(line for line in lines if line.startswith("Uid:")).split()[1:]
    gid = next(line for line in lines if line.startswith("Gid:")).split()[1:]
    assert len(set(uid)) == 1 and len(set(gid)) == 1, (uid, gid)  # real = effective = saved
    return int(uid[0]), int(gid[0])


def test_image_size_is_printed_and_within_target(images: Images) -> None:
    print(f"\nimage {images.image}: {images.size / 1e6:.1f} MB (target <= 150 MB)")
    assert images.size <= SIZE_TARGET, f"{images.size / 1e6:.1f} MB"


def test_the_default_image_names_the_postgresql_extra_for_a_postgresql_store(
    images: Images,
) -> None:
    result = podman(
        "run", "--rm", *run_args(), "-e", "SYNCD_STORE_URL=postgresql://syncd@127.0.0.1:1/syncd",
        images.image, "migrate", check=False,
    )  # fmt: skip
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    errors = [line for line in result.stderr.splitlines() if "level=" not in line]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "--build-arg EXTRAS=postgresql" in errors[0] and "store.url" in errors[0], errors


def test_the_postgresql_image_has_the_driver_and_fernet_after_stripping(images: Images) -> None:
    """--build-arg EXTRAS=postgresql (docs/scaling.md's compose): psycopg's bundled libpq and
    cryptography's Rust module still load once stripped, and syncd takes a PostgreSQL URL."""
    podman(
        "build", "--quiet", "--format", "docker", "--network", "host",
        "-v", "/etc/ssl/certs:/etc/ssl/certs:ro", "--build-arg", f"PYTHON_IMAGE={images.base}",
        "--build-arg", "EXTRAS=postgresql", "-t", PG_IMAGE, "-f", str(ROOT / "Dockerfile"),
        str(ROOT),
    )  # fmt: skip
    size = int(podman("image", "inspect", "--format", "{{.Size}}", PG_IMAGE).stdout)
    print(f"\nimage {PG_IMAGE}: {size / 1e6:.1f} MB (the default image + the postgresql extra)")
    probe = (
        "import psycopg, psycopg_binary; from psycopg import pq; "
        "from cryptography.fernet import Fernet; key = Fernet.generate_key(); "
        "assert Fernet(key).decrypt(Fernet(key).encrypt(b'token')) == b'token'; "
        "print(pq.__impl__, pq.version())"
    )
    out = podman("run", "--rm", *run_args(), "--entrypoint", "python", PG_IMAGE, "-c", probe)
    assert out.stdout.split()[0] == "binary", out.stdout
    # the config is accepted: the error is now the server that is not there (port 1)
    result = podman(
        "run", "--rm", *run_args(), "--network", "host",
        "-e", "SYNCD_STORE_URL=postgresql://syncd@127.0.0.1:1/syncd", PG_IMAGE, "migrate",
        check=False,
    )  # fmt: skip
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "postgresql extra" not in result.stderr and "Traceback" not in result.stderr
    assert "127.0.0.1" in result.stderr or "connect" in result.stderr.lower(), result.stderr


def test_runs_as_10001_with_read_only_config_and_its_files_0600_in_data(
    images: Images, containers: MakeContainer, tmp_path: Path
) -> None:
    site = Site(tmp_path)
    _pair(site)
    box = containers(images.image, *site.args())
    wait_until(lambda: _first_run_done(site, "pair"), 120, "the first run of pair")
    assert _uid_gid(box.syncd_pid()) == (UID, UID)
    caps = Path(f"/proc/{box.syncd_pid()}/status").read_text()
    assert "CapEff:\t0000000000000000" in caps and "NoNewPrivs:\t1" in caps, caps
    for name in ("syncd.db", "api-token"):
        info = (site.data / name).stat()
        assert (info.st_uid, info.st_gid) == (UID, UID), name
        assert stat.S_IMODE(info.st_mode) == 0o600, f"{name}: {oct(info.st_mode)}"
    top = site.data.stat()
    assert (top.st_uid, stat.S_IMODE(top.st_mode)) == (UID, 0o700)
    # /config really is read-only inside, and that is fine
    assert box.exec("touch", "/config/x", check=False, user=str(UID)).returncode != 0
    # the control commands work through `exec` (as root, the image's user) and leave /data
    # to 10001: a one-shot sync run as root creates nothing root-owned there
    assert "pair" in box.exec("syncd", "status").stdout
    box.exec("syncd", "pause", "pair")
    box.exec("syncd", "sync", "pair")
    owners = {(p.stat().st_uid, p.stat().st_gid) for p in site.data.rglob("*")}
    assert owners == {(UID, UID)}, owners


def test_healthy_within_the_start_period_and_unhealthy_when_the_loop_is_stopped(
    images: Images, containers: MakeContainer, tmp_path: Path
) -> None:
    site = Site(tmp_path)
    _pair(site)
    started = time.monotonic()
    box = containers(images.image, *site.args())

    def check() -> bool:
        return podman("healthcheck", "run", box.name, check=False).returncode == 0

    wait_until(check, START_PERIOD * 2, "a healthy healthcheck")
    took = time.monotonic() - started
    print(f"\nhealthy {took:.1f}s after `podman run` (start period {START_PERIOD}s)")
    assert took < START_PERIOD
    assert box.inspect()["State"]["Health"]["Status"] == "healthy"

    pid = box.syncd_pid()
    os.kill(pid, signal.SIGSTOP)
    try:
        # every check fails (each ends at --timeout=10s); three in a row (--retries=3) once
        # the start period is over make it unhealthy (failures inside it do not count)
        def failing_until_unhealthy() -> bool:
            result = podman("healthcheck", "run", box.name, check=False, timeout=60)
            assert result.returncode != 0, result
            return bool(box.inspect()["State"]["Health"]["Status"] == "unhealthy")

        wait_until(failing_until_unhealthy, START_PERIOD + 120, "the container to be unhealthy")
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_until(check, 60, "healthy again after SIGCONT")


def test_two_way_csv_sync_through_config_and_the_api_answers_on_the_published_port(
    images: Images, containers: MakeContainer, tmp_path: Path
) -> None:
    site = Site(tmp_path)
    _pair(site)
    # the image's own listen address (0.0.0.0:8765), published as docs/docker.md says
    containers(images.image, *site.args(published=True))
    wait_until(lambda: _first_run_done(site, "pair"), 120, "the first run of pair")
    status, body = site.get("/api/v1/syncs/pair")
    assert status == 200 and body["last_run"]["outcome"] == "success", body
    everyone = {"ann@example.com", "cy@example.com", "bob@example.com"}
    assert _emails(site.csv / "a.csv") == everyone
    assert _emails(site.csv / "b.csv") == everyone
    assert site.get("/api/v1/syncs", token="wrong-token")[0] == 401


def test_sigterm_stops_within_the_deadline_with_status_0_and_the_run_interrupted(
    images: Images, containers: MakeContainer, tmp_path: Path
) -> None:
    deadline = 10
    site = Site(tmp_path, shutdown_deadline=f"{deadline}s")
    site.people("big.csv", [(f"p{i}@example.com", f"P{i}") for i in range(1500)])
    site.people("copy.csv", [])
    site.sync(
        "big",
        """
        direction = "a-to-b"
        interval = "1h"
        [a]
        connector = "csv"
        path = "/csv/big.csv"
        [b]
        connector = "testcsv"
        path = "/csv/copy.csv"
        batch_size = 5
        hold = "/csv/release"
        hold_after = 2
        """,
    )
    box = containers(images.image, *site.args("-e", "SYNCD_PLUGIN_MODULES=syncd.testing.testcsv"))
    # the run is held in its writes (the release file never comes): a sync to interrupt
    wait_until((site.csv / "release.held").exists, 120, "the run to be held in its writes")
    started = time.monotonic()
    podman("stop", "-t", "30", box.name, timeout=120)
    took = time.monotonic() - started
    state = box.inspect()["State"]
    print(f"\n`podman stop -t 30`: {took:.1f}s, exit {state['ExitCode']} (deadline {deadline}s)")
    assert state["ExitCode"] == 0, box.logs()[-3000:]
    # stopped by its own deadline, not by podman's SIGKILL 30 s on (exit 137), and not by the
    # clock of a test (two CPU hogs may stretch the stop): the daemon says it cancelled the
    # held run when the deadline came
    logs = box.logs()
    assert "runs cancelled at the shutdown deadline" in logs, logs[-3000:]
    assert "Traceback" not in logs, logs[-3000:]
    # the run is recorded as interrupted, the database is whole, the CSV file complete rows
    db = sqlite3.connect(site.data / "syncd.db")
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        db.close()
    history = podman(
        "run", "--rm", *run_args(), *site.args("-e", "SYNCD_PLUGIN_MODULES=syncd.testing.testcsv"),
        images.image, "history", "big", "--json",
    ).stdout  # fmt: skip
    assert '"outcome": "interrupted"' in history, history
    rows = list(csv.reader((site.csv / "copy.csv").open(newline="")))
    assert "email" in rows[0] and all(len(r) == len(rows[0]) for r in rows), rows[:3]
    assert 10 <= len(rows) - 1 < 1500, len(rows)  # the first batches are there, not all


def test_secrets_from_file_variables_and_mounted_files_never_in_the_logs(
    images: Images, containers: MakeContainer, tmp_path: Path
) -> None:
    api_token = "image-test-api-token-7f3a9c2e5b"
    app_token = "image-test-app-token-d41c8e0f9a"
    site = Site(tmp_path, extra_toml='[api]\ntoken = "${file:/run/secrets/syncd_api_token}"\n')
    site.secret("syncd_api_token", api_token)
    site.secret("app_token", app_token)
    site.people("a.csv", [("ann@example.com", "Ann")])
    site.people("b.csv", [])
    # fail = "leak": every run fails with an error whose text carries the token (a careless
    # app); the token only gets there through APP_TOKEN_FILE
    site.sync(
        "leaky",
        """
        direction = "a-to-b"
        interval = "1h"
        [a]
        connector = "csv"
        path = "/csv/a.csv"
        [b]
        connector = "testcsv"
        path = "/csv/b.csv"
        token = "${env:APP_TOKEN}"
        fail = "leak"
        """,
    )
    box = containers(
        images.image,
        *site.args(
            "-e", "SYNCD_PLUGIN_MODULES=syncd.testing.testcsv",
            "-e", "APP_TOKEN_FILE=/run/secrets/app_token",
        ),
        command=("--log-level", "debug", "run"),
    )  # fmt: skip
    wait_until(lambda: site.get("/api/v1/syncs/leaky", api_token)[0] == 200, 120, "the API")
    assert not (site.data / "api-token").exists()  # the mounted one is used, none generated

    def failed() -> dict | None:
        _, body = site.get("/api/v1/syncs/leaky", api_token)
        run = body and body["last_run"]
        return run if run and run["outcome"] not in ("running", None) else None

    run = wait_until(failed, 120, "the leaky run to fail")
    assert run["outcome"] != "success", run
    assert app_token not in str(run) and "***" in str(run), run
    box.exec("syncd", "status")
    box.exec("syncd", "trigger", "leaky", "--wait", check=False)
    logs = box.logs()
    assert "leak" in logs  # the failure is logged...
    assert app_token not in logs and api_token not in logs  # ...without the secrets


def test_puid_pgid_and_tz(images: Images, containers: MakeContainer, tmp_path: Path) -> None:
    site = Site(tmp_path)
    _pair(site)
    os.chown(site.data, 1234, 2345)  # the NAS user's folder
    (site.data / "notes.txt").write_text("theirs")
    os.chown(site.data / "notes.txt", 1234, 2345)
    os.chown(site.csv, 1234, 2345)
    for name in ("a.csv", "b.csv"):
        os.chown(site.csv / name, 1234, 2345)
    box = containers(
        images.image, *site.args("-e", "PUID=1234", "-e", "PGID=2345", "-e", "TZ=Europe/Amsterdam")
    )
    wait_until(lambda: _first_run_done(site, "pair"), 120, "the first run of pair")
    assert _uid_gid(box.syncd_pid()) == (1234, 2345)
    owners = {(p.stat().st_uid, p.stat().st_gid) for p in site.data.rglob("*")}
    assert owners == {(1234, 2345)}, owners
    environ = Path(f"/proc/{box.syncd_pid()}/environ").read_bytes().split(b"\0")
    assert b"TZ=Europe/Amsterdam" in environ
    zone = box.exec("python3", "-c", "import time; print(time.strftime('%Z', time.localtime(0)))")
    assert zone.stdout.strip() == "CET", zone.stdout

    # a bad PUID or TZ is one clear line and exit status 2
    for env, message in (
        ("PUID=abc", "PUID=abc: expected a number"),
        ("TZ=Mars/Base", "TZ=Mars/Base"),
    ):
        bad = podman("run", "--rm", *run_args(), *site.args("-e", env), images.image, check=False)
        assert bad.returncode == 2 and message in bad.stderr, bad
    # started as another user (--user), it runs as that user
    other = Site(tmp_path / "other")
    _pair(other)
    os.chown(other.data, 4321, 4321)
    box = containers(images.image, *other.args("--user", "4321:4321"))
    wait_until(lambda: _first_run_done(other, "pair"), 120, "the first run of pair")
    assert _uid_gid(box.syncd_pid()) == (4321, 4321)


def test_a_derived_image_adds_a_third_party_plugin(images: Images) -> None:
    derived = "localhost/syncd-plugin:image-test"
    podman(
        "build", "--quiet", "--format", "docker", "--network", "host",
        "-v", "/etc/ssl/certs:/etc/ssl/certs:ro", "--build-arg", f"BASE={images.image}",
        "-t", derived, "-f", str(ROOT / "tests_image/fixtures/Dockerfile.plugin"),
        str(ROOT / "tests_image/fixtures"),
    )  # fmt: skip
    listed = podman("run", "--rm", *run_args(), derived, "plugins").stdout
    assert "syncd-hello" in listed and "hello" in listed, listed
    user = podman("run", "--rm", *run_args(), "--entrypoint", "id", derived, "-u").stdout
    assert user.strip() == "0"  # the entrypoint still starts as root and drops to PUID
