"""contrib/systemd/syncd.service booted for real: systemd as PID 1 in a privileged podman
container (contrib/image/Containerfile.systemd), syncd installed as docs/systemd.md says."""

from __future__ import annotations

import json
import socket
import subprocess
import textwrap
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from image_support import Images, free_port, podman, run_args, wait_until

TOKEN = "systemd-credential-token-5e8d1a7c"
DYNAMIC_UIDS = range(61184, 65520)  # systemd's DynamicUser= range


class Machine:
    def __init__(self, name: str, port: int) -> None:
        self.name = name
        self.port = port

    def sh(self, script: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return podman("exec", self.name, "sh", "-c", script, check=check)

    def write(self, path: str, text: str, mode: str = "0644") -> None:
        podman("exec", "-i", self.name, "sh", "-c", f"cat > {path} && chmod {mode} {path}",
               check=True, input=text)  # fmt: skip

    def show(self, *props: str) -> dict[str, str]:
        out = self.sh(f"systemctl show syncd {' '.join('-p ' + p for p in props)}").stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def api(self, path: str, token: str = TOKEN, method: str = "GET") -> tuple[int, Any]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}",
            method=method,
            data=b"{}" if method == "POST" else None,
        )
        request.add_header("Authorization", f"Bearer {token}")
        request.add_header("Content-Type", "application/json")
        try:
            # generous: an answer on a loaded machine is late, not lost
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, None
        except OSError:
            return 0, None

    def journal(self) -> str:
        return self.sh("journalctl -u syncd --no-pager -o cat").stdout

    def main_uid(self) -> int:
        pid = self.show("MainPID")["MainPID"]
        status = self.sh(f"cat /proc/{pid}/status").stdout
        return int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])


@pytest.fixture(scope="module")
def machine(images: Images) -> Iterator[Machine]:
    name = "syncd-systemd-test"
    podman("rm", "-f", "-t", "0", name, check=False)
    port = free_port()
    podman(
        "run", "-d", "--name", name, "--privileged", "--systemd=always", "--network", "host",
        *run_args(),
        images.systemd_image,
    )  # fmt: skip
    box = Machine(name, port)
    try:

        def booted() -> str | None:
            state = box.sh("systemctl is-system-running", check=False).stdout.strip()
            return state if state in ("running", "degraded") else None

        state = wait_until(booted, 180, "systemd to finish booting")
        assert state == "running", box.sh("systemctl --failed --no-pager", check=False).stdout
        # the config and the credential, as docs/systemd.md says
        box.write(
            "/etc/syncd/syncd.toml",
            textwrap.dedent(
                f"""
                [daemon]
                log_format = "json"
                shutdown_deadline = "10s"
                [api]
                listen = "127.0.0.1:{port}"
                token = "${{cred:syncd-api-token}}"
                """
            ),
        )
        # with its id column, the read-only source is never written (ProtectSystem=strict)
        box.write("/etc/syncd/people.csv", "id,email,first_name\np1,ann@example.com,Ann\n")
        box.write("/etc/syncd/syncs/copy.toml", _copy_sync("copy"))
        box.sh("install -d -m 0700 /etc/credstore")
        box.write("/etc/credstore/syncd-api-token", TOKEN, mode="0600")
        yield box
    finally:
        podman("rm", "-f", "-t", "0", name, check=False)


def _copy_sync(name: str) -> str:
    return textwrap.dedent(
        f"""
        direction = "a-to-b"
        interval = "1h"
        [a]
        connector = "csv"
        path = "/etc/syncd/people.csv"
        [b]
        connector = "csv"
        path = "/var/lib/syncd/{name}.csv"
        """
    )


def test_systemd_is_pid_1(machine: Machine) -> None:
    assert machine.sh("cat /proc/1/comm").stdout.strip() == "systemd"


def test_type_notify_is_active_only_after_ready(machine: Machine) -> None:
    # a listen address in use: syncd exits 2 before READY=1, so the start fails and the unit
    # was never active (with Type=simple the start would have succeeded at the fork)
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        machine.sh(
            "mkdir -p /etc/systemd/system/syncd.service.d && printf '[Service]\\n"
            f"Environment=SYNCD_API_LISTEN=127.0.0.1:{busy.getsockname()[1]}\\n' "
            "> /etc/systemd/system/syncd.service.d/busy.conf && systemctl daemon-reload"
        )
        failed = machine.sh("systemctl start syncd", check=False)
        shown = machine.show(
            "ActiveState", "ActiveEnterTimestampMonotonic", "ExecMainStatus", "NRestarts"
        )
        assert failed.returncode != 0, failed
        assert shown["ActiveEnterTimestampMonotonic"] == "0", shown
        assert (shown["ExecMainStatus"], shown["NRestarts"]) == ("2", "0"), shown
    finally:
        busy.close()
        machine.sh(
            "rm /etc/systemd/system/syncd.service.d/busy.conf && systemctl daemon-reload "
            "&& systemctl reset-failed syncd"
        )
    # when `systemctl start` returns, READY=1 has come: the API answers at once, no waiting
    machine.sh("systemctl start syncd")
    assert machine.api("/healthz")[0] == 200
    shown = machine.show("ActiveState", "SubState", "StatusText", "Type")
    assert (shown["ActiveState"], shown["SubState"], shown["Type"]) == (
        "active",
        "running",
        "notify",
    )
    assert "sync" in shown["StatusText"], shown


def test_dynamic_user_and_state_directory_own_the_state(machine: Machine) -> None:
    uid = machine.main_uid()
    assert uid in DYNAMIC_UIDS, uid
    assert machine.sh("readlink /var/lib/syncd").stdout.strip() == "private/syncd"

    def first_run() -> Any:
        status, body = machine.api("/api/v1/syncs/copy")
        return status == 200 and body["last_run"] and body["state"] != "running" and body

    body = wait_until(first_run, 120, "the first run of copy")
    assert body["last_run"]["outcome"] == "success", body
    listing = machine.sh(
        "stat -c '%u %a %n' /var/lib/private/syncd /var/lib/private/syncd/*"
    ).stdout
    rows = [line.split(" ", 2) for line in listing.splitlines()]
    assert rows[0][:2] == [str(uid), "700"], listing
    assert all(owner == str(uid) for owner, _, _ in rows), listing
    assert all(mode == "600" for _, mode, path in rows[1:] if "syncd.db" in path), listing


def test_load_credential_delivers_the_api_token(machine: Machine) -> None:
    status, body = machine.api("/api/v1/syncs")
    assert status == 200 and [s["name"] for s in body["syncs"]] == ["copy"], body
    assert machine.api("/api/v1/syncs", token="not-the-token")[0] == 401
    # the configured token is used: none generated in the state directory
    assert machine.sh("test -e /var/lib/syncd/api-token", check=False).returncode != 0
    assert TOKEN not in machine.journal()


def test_reload_rereads_the_config(machine: Machine) -> None:
    pid = machine.show("MainPID")["MainPID"]
    machine.write("/etc/syncd/syncs/second.toml", _copy_sync("second"))
    machine.sh("systemctl reload syncd")

    def listed() -> bool:
        status, body = machine.api("/api/v1/syncs")
        return status == 200 and "second" in [s["name"] for s in body["syncs"]]

    wait_until(listed, 60, "the reloaded config to list 'second'")
    assert machine.show("MainPID")["MainPID"] == pid  # re-read, not restarted


def test_syncd_run_as_root_beside_it_leaves_nothing_the_service_cannot_read(
    machine: Machine,
) -> None:
    # a sync the daemon has not run yet (not reloaded): root runs it first, in the same state
    # directory, with the same config (its ${cred:...} read from /etc/credstore)
    machine.write("/etc/syncd/syncs/other.toml", _copy_sync("other"))
    ran = machine.sh("syncd sync other", check=False)
    assert ran.returncode == 0, ran
    assert "copy" in machine.sh("syncd status").stdout  # root's control commands work too
    root_owned = machine.sh("find /var/lib/private/syncd -uid 0").stdout.split()
    assert root_owned == [], root_owned
    machine.sh("systemctl reload syncd")
    wait_until(lambda: "other" in machine.sh("syncd status", check=False).stdout, 60, "other")
    triggered = machine.sh("syncd trigger other --wait", check=False)
    assert triggered.returncode == 0, (triggered, machine.journal()[-3000:])
    status, body = machine.api("/api/v1/syncs/other")
    assert status == 200 and body["last_run"]["outcome"] == "success", body


def test_stop_is_clean(machine: Machine) -> None:
    stopped = machine.sh("systemctl stop syncd", check=False)
    assert stopped.returncode == 0, stopped
    shown = machine.show("ActiveState", "Result", "ExecMainStatus", "ExecMainCode")
    assert shown["ActiveState"] == "inactive" and shown["Result"] == "success", shown
    assert shown["ExecMainStatus"] == "0", shown
    journal = machine.journal()
    assert "Traceback" not in journal and TOKEN not in journal, journal[-3000:]
    assert '"event": "stopped"' in journal or "stopped" in journal, journal[-3000:]
