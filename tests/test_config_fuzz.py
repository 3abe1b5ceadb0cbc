"""Malformed config directories, generated: ``syncd check`` must catch everything ``syncd run``
would choke on (issue 21, section 2).

Every case is a whole config directory. Each must either be refused with one clean line per
problem, naming the file (and the key, where there is one), and no other exception — no
traceback, no hang (FIFOs and devices are refused without being read) — or be valid and then
genuinely work: both connectors accept their settings and the durations fit the scheduler.

The in-process cases call the loader (fast); a representative subset goes through the real
``syncd check`` (exit 2, ``error:`` lines, no traceback) and, for valid ones, ``syncd sync``.
Hypothesis adds generated durations, secret references, file bytes and whole TOML documents.
"""

from __future__ import annotations

import math
import os
import subprocess
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from apscheduler.triggers.interval import IntervalTrigger
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import SYNCD, cli_env

from syncd.config import SYNC_KEYS as ALL_SYNC_KEYS
from syncd.config import Config, ConfigError, load_config
from syncd.config_files import CONFIG_FILE_LIMIT, SECRET_FILE_LIMIT
from syncd.config_secrets import resolve
from syncd.config_values import FULL_EVERY, INTERVAL, SHUTDOWN_DEADLINE, parse_duration
from syncd.connector import ConnectorContext
from syncd.plugins import Plugins, load_plugins
from syncd.testing import memory

pytestmark = pytest.mark.timeout(300)

SECRETS = {
    "FUZZ_XERO_SECRET": "xero-secret-0123456789",
    "FUZZ_SF_KEY": "salesflare-key-0123456789",
    "FUZZ_WP_KEY": "woodpecker-key-0123456789",
    "FUZZ_SALESFIRE": "salesfire-secret-0123456789",
    "FUZZ_TOKEN": "memory-token-0123456789",
    "FUZZ_SHORT": "abc",
    "FUZZ_EMPTY": "",
    "FUZZ_NUMBER": "250",
}

CSV_A = 'connector = "csv"\npath = "a.csv"\n'
CSV_B = 'connector = "csv"\npath = "b.csv"\n'
XERO = 'connector = "xero"\nclient_id = "client-id-1"\nclient_secret = "${env:FUZZ_XERO_SECRET}"\n'
SALESFLARE = 'connector = "salesflare"\napi_key = "${env:FUZZ_SF_KEY}"\n'
WOODPECKER = 'connector = "woodpecker"\napi_key = "${env:FUZZ_WP_KEY}"\n'
SALESFIRE = 'connector = "salesfire"\nsite = "s1"\nlist = "l1"\nsecret = "${env:FUZZ_SALESFIRE}"\n'
MEMORY = 'connector = "memory"\naccount = "fuzz"\ntoken = "${env:FUZZ_TOKEN}"\n'

DAEMON_OK = '[daemon]\nshutdown_deadline = "25s"\n[defaults]\ninterval = "10m"\n'


def sync_toml(top: str = "", a: str = CSV_A, b: str = CSV_B, tail: str = "") -> str:
    return f"{top}\n[a]\n{a}\n[b]\n{b}\n{tail}\n"


Content = str | bytes


@dataclass
class Case:
    name: str
    sync: Content | None = None  # syncs/s.toml (None: the default valid one)
    daemon: Content | None = DAEMON_OK  # syncd.toml (None: no file)
    setup: Callable[[Path], None] | None = None
    #: substrings each found in some error line; empty: the config is valid
    expect: tuple[str, ...] = ()
    #: a key that must be named by some error line
    key: str | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        return not self.expect


def write(path: Path, content: Content) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")


def build(root: Path, case: Case) -> Path:
    config = root / "config"
    config.mkdir(parents=True, exist_ok=True)
    if case.daemon is not None:
        write(config / "syncd.toml", case.daemon)
    write(config / "syncs" / "s.toml", case.sync if case.sync is not None else sync_toml())
    if case.setup is not None:
        case.setup(config)
    return config


# --- the cases ------------------------------------------------------------------------------

CASES: list[Case] = []


def add(
    name: str, expect: tuple[str, ...] | str = (), key: str | None = None, **kwargs: Any
) -> None:
    if isinstance(expect, str):
        expect = (expect,)
    CASES.append(Case(name, expect=expect, key=key, **kwargs))


def sync_case(name: str, body: str, expect: tuple[str, ...] | str = (), **kw: Any) -> None:
    add(name, expect, sync=body, **kw)


# valid baselines, one per connector pairing
sync_case("valid-csv-csv", sync_toml())
sync_case("valid-no-daemon-file", sync_toml(), daemon=None)
sync_case("valid-xero-salesflare", sync_toml(a=XERO, b=SALESFLARE))
sync_case("valid-csv-woodpecker", sync_toml(a=CSV_A, b=WOODPECKER))
sync_case("valid-csv-salesfire", sync_toml('direction = "a-to-b"', CSV_A, SALESFIRE))
sync_case("valid-memory-csv", sync_toml(a=MEMORY))
sync_case("valid-dollar-literal", sync_toml(a=CSV_A, b='connector = "csv"\npath = "b$$1.csv"\n'))
sync_case("valid-price-dollar", sync_toml(a=CSV_A, b='connector = "csv"\npath = "b$5.csv"\n'))
sync_case(
    "valid-xero-client-credentials",
    sync_toml(a=XERO + 'grant = "client_credentials"\n', b=SALESFLARE),
)
sync_case("valid-deletions-tag-toward-csv", sync_toml('deletions = "tag"'))
sync_case(
    "valid-deletions-tag-xero-to-salesflare",
    sync_toml('direction = "a-to-b"\ndeletions = "tag"', XERO, SALESFLARE),
)

# 1. encodings: in syncd.toml, in a sync file, in a ${file:} secret
BAD_BYTES = {
    "latin1": 'interval = "10m" # caf\xe9\n'.encode("latin-1"),
    "lone-ff": b'interval = "10m"\n\xff\n',
    "bad-continuation": b'interval = "\xc3\x28"\n',
    "overlong": b'interval = "\xc0\xaf"\n',
    "surrogate": b'interval = "\xed\xa0\x80"\n',
    "utf16le": '\ufeffinterval = "10m"\n'.encode("utf-16-le"),
    "utf16be": '\ufeffinterval = "10m"\n'.encode("utf-16-be"),
    "utf16-no-bom": 'interval = "10m"\n'.encode("utf-16-le"),
    "nul": b'interval = "10m"\x00\n',
    "truncated": 'interval = "10m" # \u00e9'.encode()[:-1],
}
for label, data in BAD_BYTES.items():
    add(f"daemon-bytes-{label}", "syncd.toml", daemon=data)
    add(f"sync-bytes-{label}", "s.toml", sync=data)

    def secret_setup(config: Path, data: bytes = data) -> None:
        (config / "secret.txt").write_bytes(data)

    add(
        f"secret-bytes-{label}",
        "${file:",
        key="a.token",
        sync=sync_toml(a='connector = "memory"\naccount = "m"\ntoken = "${file:@SECRETFILE@}"\n'),
        setup=secret_setup,
    )
add("sync-utf8-bom-ok", sync=b"\xef\xbb\xbf" + sync_toml().encode())

# 2. durations
BAD_DURATIONS: dict[str, tuple[str, str]] = {
    "inf": ("inf", "expected a duration"),
    "-inf": ("-inf", "expected a duration"),
    "nan": ("nan", "expected a duration"),
    "1e308": ("1e308", "longer than the maximum"),
    "huge-days": ('"99999999999999999999999d"', "expected a duration"),
    "many-days": ('"99999999999d"', "longer than the maximum"),
    "1ms": ('"1ms"', "shorter than the minimum"),
    "zero": ("0", "longer than zero"),
    "negative": ("-5", "longer than zero"),
    "zero-s": ('"0s"', "longer than zero"),
    "empty": ('""', "expected a duration"),
    "unit": ('"10x"', "expected a duration"),
    "trailing": ('"10m and"', "expected a duration"),
    "bool": ("true", "expected a duration"),
    "list": ("[1]", "expected a duration"),
    "table": ("{ s = 1 }", "expected a duration"),
    "bigint": ("1" + "0" * 30, "expected a duration"),
    "digits-string": ('"' + "9" * 5000 + 's"', "expected a duration"),
    "tiny-float": ("1e-9", "shorter than the minimum"),
    "year": ('"400d"', "longer than the maximum"),
}
VALID_DURATIONS = ('"10s"', '"1h30m"', "600", "3600.5", '"1d"', '"2w"')
for label, (value, message) in BAD_DURATIONS.items():
    add(f"interval-{label}", message, key="interval", sync=sync_toml(f"interval = {value}"))
    add(f"full_every-{label}", message, key="full_every", sync=sync_toml(f"full_every = {value}"))
    add(
        f"default-interval-{label}",
        message,
        key="defaults.interval",
        daemon=f"[defaults]\ninterval = {value}\n",
    )
    if label not in ("1ms", "tiny-float"):  # a deadline may be short
        add(
            f"shutdown-{label}",
            message,
            key="daemon.shutdown_deadline",
            daemon=f"[daemon]\nshutdown_deadline = {value}\n",
        )
add("interval-31d", "longer than the maximum", key="interval", sync=sync_toml('interval = "31d"'))
add("interval-9s", "shorter than the minimum", key="interval", sync=sync_toml('interval = "9s"'))
add("shutdown-2h", "longer than the maximum", daemon='[daemon]\nshutdown_deadline = "2h"\n')
add("full_every-30s", "shorter than the minimum", sync=sync_toml('full_every = "30s"'))
for value in VALID_DURATIONS:
    add(f"interval-ok-{value}", sync=sync_toml(f"interval = {value}"))
    add(f"default-interval-ok-{value}", daemon=f"[defaults]\ninterval = {value}\n")

# 3. rules
RULE_CASES: dict[str, tuple[str, str]] = {
    "then-int": ("[[rules.a-to-b]]\nif = []\nthen = 5\n", "then: expected a list"),
    "if-int": ("[[rules.a-to-b]]\nif = 5\nthen = []\n", "if: expected a list"),
    "then-string": ('[[rules.a-to-b]]\nthen = "x"\n', "then: expected a list"),
    "if-table": ("[[rules.a-to-b]]\nif = { field = 1 }\n", "if: expected a list"),
    "if-item-int": ("[[rules.a-to-b]]\nif = [5]\n", "if[0]: expected"),
    "then-item-int": ("[[rules.a-to-b]]\nthen = [5]\n", "then[0]: expected"),
    "rules-int": ("rules = 5\n", "rules: expected"),
    "rules-direction-int": ("[rules]\na-to-b = 5\n", "rules.a-to-b: expected"),
    "rules-item-int": ("[rules]\na-to-b = [5]\n", "rules.a-to-b[0]: expected a table"),
    "rules-unknown-direction": ("[[rules.sideways]]\n", "rules.sideways: unknown key"),
    "op-unknown": (
        '[[rules.a-to-b]]\nif = [{ field = "email", op = "like", value = "x" }]\n',
        "unknown operator",
    ),
    "op-int": ('[[rules.a-to-b]]\nif = [{ field = "email", op = 5 }]\n', "unknown operator"),
    "field-int": ('[[rules.a-to-b]]\nif = [{ field = 5, op = "is_set" }]\n', "expected a string"),
    "field-unknown": (
        '[[rules.a-to-b]]\nif = [{ field = "shoe", op = "is_set" }]\n',
        "unknown field",
    ),
    "field-bare-custom": (
        '[[rules.a-to-b]]\nif = [{ field = "custom.", op = "is_set" }]\n',
        "unknown field",
    ),
    "field-missing": ('[[rules.a-to-b]]\nif = [{ op = "is_set" }]\n', "field: missing"),
    "value-missing": (
        '[[rules.a-to-b]]\nif = [{ field = "email", op = "equals" }]\n',
        "needs a value",
    ),
    "value-table": (
        '[[rules.a-to-b]]\nif = [{ field = "email", op = "equals", value = { x = 1 } }]\n',
        "expected a string",
    ),
    "value-on-is-set": (
        '[[rules.a-to-b]]\nif = [{ field = "email", op = "is_set", value = "x" }]\n',
        "takes no value",
    ),
    "in-not-list": (
        '[[rules.a-to-b]]\nif = [{ field = "email", op = "in", value = "x" }]\n',
        "needs a list",
    ),
    "in-list-of-ints": (
        '[[rules.a-to-b]]\nif = [{ field = "email", op = "in", value = [1, 2] }]\n',
        "needs a list of strings",
    ),
    "regex-invalid": (
        '[[rules.a-to-b]]\nif = [{ field = "email", op = "matches", value = "[" }]\n',
        "not a valid regular expression",
    ),
    "regex-3000-groups": (
        '[[rules.a-to-b]]\nif = [{ field = "email", op = "matches", value = "'
        + "(" * 3000
        + ")" * 3000
        + '" }]\n',
        "characters at most",
    ),
    "regex-nested-quantifier": (
        '[[rules.a-to-b]]\nif = [{ field = "email", op = "matches", value = "(a+)+$" }]\n',
        "repeats",
    ),
    "regex-nested-star": (
        '[[rules.a-to-b]]\nif = [{ field = "email", op = "matches", value = \'(\\w*\\s?)*$\' }]\n',
        "repeats",
    ),
    "regex-many-groups": (
        '[[rules.a-to-b]]\nif = [{ field = "email", op = "matches", value = "'
        + "(a)" * 60
        + '" }]\n',
        "groups at most",
    ),
    "regex-long": (
        '[[rules.a-to-b]]\nif = [{ field = "email", op = "matches", value = "'
        + "a" * 600
        + '" }]\n',
        "characters at most",
    ),
    "regex-int": (
        '[[rules.a-to-b]]\nif = [{ field = "email", op = "matches", value = 5 }]\n',
        "expected a string",
    ),
    "action-unknown": ("[[rules.a-to-b]]\nthen = [{ paint = 'red' }]\n", "unknown action"),
    "action-empty": ("[[rules.a-to-b]]\nthen = [{}]\n", "unknown action"),
    "add-tag-int": ("[[rules.a-to-b]]\nthen = [{ add_tag = 5 }]\n", "expected a string"),
    "add-tag-empty": ('[[rules.a-to-b]]\nthen = [{ add_tag = "" }]\n', "may not be empty"),
    "add-and-remove": (
        '[[rules.a-to-b]]\nthen = [{ add_tag = "x", remove_tag = "y" }]\n',
        "unknown key",
    ),
    "set-no-value": ('[[rules.a-to-b]]\nthen = [{ set = "title" }]\n', "set needs a value"),
    "set-value-int": (
        '[[rules.a-to-b]]\nthen = [{ set = "title", value = 5 }]\n',
        "expected a string",
    ),
    "set-list-to-text": (
        '[[rules.a-to-b]]\nthen = [{ set = "title", value = ["a"] }]\n',
        "takes a string, not a list",
    ),
    "set-unknown-field": (
        '[[rules.a-to-b]]\nthen = [{ set = "shoe", value = "x" }]\n',
        "unknown field",
    ),
    "match-bad": ('[[rules.a-to-b]]\nmatch = "some"\n', "must be one of all, any"),
    "rule-unknown-key": ("[[rules.a-to-b]]\nwhen = []\n", "unknown key"),
}
for label, (tail, message) in RULE_CASES.items():
    if tail.startswith("rules ="):
        sync_case(f"rule-{label}", sync_toml(tail.strip()), message)
        continue
    sync_case(f"rule-{label}", sync_toml(tail=tail), message)
    if label.startswith(("then", "if-", "op-", "regex", "action", "set-")):
        # the same mistake in the other direction's rules
        sync_case(
            f"rule-b-{label}",
            sync_toml(tail=tail.replace("a-to-b", "b-to-a")),
            message.replace("a-to-b", "b-to-a"),
        )
sync_case(
    "rule-valid",
    sync_toml(
        tail="[[rules.a-to-b]]\n"
        'if = [{ field = "email", op = "matches", value = "^[a-z]+@x\\\\.com$" }]\n'
        'then = [{ add_tag = "x" }, { set = "title", value = "CEO" }]\n'
    ),
)

# 4. TOML that tomllib cannot take without help
DEEP = {
    "deep-arrays": "x = " + "[" * 5000 + "]" * 5000 + "\n",
    "deep-inline-tables": "x = " + "{ a = " * 5000 + "1" + " }" * 5000 + "\n",
    "long-int": "interval = " + "9" * 5000 + "\n",
    "long-negative-int": "interval = -" + "9" * 5000 + "\n",
    "malformed": 'interval = "10m\n',
    "duplicate-key": 'interval = "10m"\ninterval = "20m"\n',
}
for label, text in DEEP.items():
    add(f"daemon-{label}", "syncd.toml", daemon=text)
    add(f"sync-{label}", "s.toml", sync=text + sync_toml())
add("daemon-too-big", "limit", daemon="# " + "x" * CONFIG_FILE_LIMIT + "\n")
add("sync-too-big", "limit", sync=sync_toml() + "# " + "x" * CONFIG_FILE_LIMIT + "\n")

# 5. secret references: where they go, and how they can be mistyped
REFERENCES: dict[str, tuple[str, str]] = {
    "upper-scheme": ("${ENV:FUZZ_TOKEN}", "in lower case"),
    "bare-dollar": ("$FUZZ_TOKEN", "looks like a secret reference"),
    "unterminated": ("${env:FUZZ_TOKEN", "unterminated"),
    "empty-file": ("${file:}", "empty reference"),
    "empty-env": ("${env:}", "empty reference"),
    "empty-braces": ("${}", "not a valid secret reference"),
    "unknown-scheme": ("${vault:x}", "not a valid secret reference"),
    "no-scheme": ("${FUZZ_TOKEN}", "not a valid secret reference"),
    "bad-env-name": ("${env:1BAD}", "not an environment variable name"),
    "unset-env": ("${env:FUZZ_UNSET_VARIABLE}", "is not set"),
    "no-user": ("${file:~nouser-fuzz/x}", "cannot expand ~"),
    "dev-zero": ("${file:/dev/zero}", "a device"),
    "dev-null": ("${file:/dev/null}", "a device"),
    "missing-file": ("${file:/nonexistent/fuzz}", "no such file"),
    "directory": ("${file:/}", "a directory"),
    "cred-without-dir": ("${cred:fuzz}", "CREDENTIALS_DIRECTORY"),
    "cred-escape": ("${cred:../x}", "not a credential name"),
    "short": ("${env:FUZZ_SHORT}", "at least 8 characters"),
    "empty-value": ("${env:FUZZ_EMPTY}", "at least 8 characters"),
    "dollar-brace-middle": ("abc${env:FUZZ_TOKEN", "unterminated"),
}
for label, (reference, message) in REFERENCES.items():
    add(
        f"ref-daemon-token-{label}",
        message,
        key="api.token",
        daemon=f'[api]\ntoken = "{reference}"\n',
    )
    add(
        f"ref-secret-setting-{label}",
        message,
        key="a.token",
        sync=sync_toml(a=f'connector = "memory"\naccount = "m"\ntoken = "{reference}"\n'),
    )
    add(
        f"ref-xero-tenant-{label}",
        message,
        key="a.tenant",
        sync=sync_toml(a=XERO + f'tenant = "{reference}"\n', b=SALESFLARE),
    )
    add(
        f"ref-woodpecker-key-{label}",
        message,
        key="b.api_key",
        sync=sync_toml(a=CSV_A, b=f'connector = "woodpecker"\napi_key = "{reference}"\n'),
    )
    if label not in ("short", "empty-value"):  # a public setting may hold a short value
        add(
            f"ref-public-setting-{label}",
            message,
            key="b.path",
            sync=sync_toml(b=f'connector = "csv"\npath = "{reference}"\n'),
        )
add(
    "secret-literal-short",
    "at least 8 characters",
    key="b.api_key",
    sync=sync_toml(b='connector = "salesflare"\napi_key = "sandbox"\n'),
)
add("daemon-token-literal-short", "at least 8 characters", daemon='[api]\ntoken = "short"\n')
add(
    "ref-int-setting",
    sync=sync_toml(a='connector = "csv"\npath = "a.csv"\nbatch_size = "${env:FUZZ_NUMBER}"\n'),
)


def _secret_file(name: str, content: bytes) -> Callable[[Path], None]:
    def setup(config: Path) -> None:
        (config / name).write_bytes(content)

    return setup


def _fifo(relative: str) -> Callable[[Path], None]:
    def setup(config: Path) -> None:
        target = config / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists() or target.is_symlink():
            target.unlink()
        os.mkfifo(target)

    return setup


add(
    "secret-file-too-big",
    "more than the limit",
    sync=sync_toml(a='connector = "memory"\naccount = "m"\ntoken = "${file:@SECRETFILE@}"\n'),
    setup=_secret_file("secret.txt", b"x" * (SECRET_FILE_LIMIT + 1)),
)
add(
    "secret-file-fifo",
    "FIFO",
    key="a.token",
    sync=sync_toml(a='connector = "memory"\naccount = "m"\ntoken = "${file:@SECRETFILE@}"\n'),
    setup=_fifo("secret.txt"),
)
add(
    "secret-file-ok",
    sync=sync_toml(a='connector = "memory"\naccount = "m"\ntoken = "${file:@SECRETFILE@}"\n'),
    setup=_secret_file("secret.txt", b"a-long-enough-secret\n"),
)
add(
    "env-file-indirection-fifo",
    "FIFO",
    sync=sync_toml(a='connector = "memory"\naccount = "m"\ntoken = "${env:FUZZ_INDIRECT}"\n'),
    setup=_fifo("indirect.txt"),
    env={"FUZZ_INDIRECT_FILE": "INDIRECT"},
)

# 6. FIFOs, devices and directories where files belong
add("daemon-file-fifo", "FIFO", setup=_fifo("syncd.toml"))
add("sync-file-fifo", "FIFO", setup=_fifo("syncs/s.toml"))
add("second-sync-file-fifo", "FIFO", setup=_fifo("syncs/t.toml"))
add("csv-path-fifo", "not a regular file", key="a.path", setup=_fifo("a.csv"))


def _symlink(relative: str, target: str) -> Callable[[Path], None]:
    def setup(config: Path) -> None:
        link = config / relative
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.exists() or link.is_symlink():
            link.unlink()
        link.symlink_to(target.replace("CONFIG", str(config)))

    return setup


def _mkdir(relative: str) -> Callable[[Path], None]:
    def setup(config: Path) -> None:
        (config / relative).mkdir(parents=True, exist_ok=True)

    return setup


def _both(*steps: Callable[[Path], None]) -> Callable[[Path], None]:
    def setup(config: Path) -> None:
        for step in steps:
            step(config)

    return setup


def _remove(relative: str) -> Callable[[Path], None]:
    def setup(config: Path) -> None:
        target = config / relative
        if target.is_dir() and not target.is_symlink():
            for child in target.iterdir():
                child.unlink()
            target.rmdir()
        else:
            target.unlink()

    return setup


add(
    "daemon-file-dev-null",
    "a device",
    setup=_both(_remove("syncd.toml"), _symlink("syncd.toml", "/dev/null")),
)
add("sync-file-dev-zero", "a device", setup=_symlink("syncs/t.toml", "/dev/zero"))
add("daemon-file-directory", "a directory", daemon=None, setup=_mkdir("syncd.toml"))
add("sync-file-directory", "a directory", setup=_mkdir("syncs/t.toml"))
add("csv-path-directory", "is a directory", key="a.path", setup=_mkdir("a.csv"))
add(
    "csv-path-dev-null",
    "not a regular file",
    sync=sync_toml(a='connector = "csv"\npath = "/dev/null"\n'),
)
add(
    "csv-path-under-a-file",
    "is not a directory",
    sync=sync_toml(a='connector = "csv"\npath = "syncd.toml/x.csv"\n'),
)

# 7. silently ignored things
add(
    "syncs-is-a-file",
    "it must be a directory",
    setup=_both(_remove("syncs"), _secret_file("syncs", b"x")),
)
add(
    "syncs-broken-link",
    "broken symbolic link",
    setup=_both(_remove("syncs"), _symlink("syncs", "CONFIG/nowhere")),
)
add(
    "syncs-loop",
    "symbolic link loop",
    setup=_both(_remove("syncs"), _symlink("syncs", "CONFIG/syncs")),
)
add(
    "sync-broken-link",
    "broken symbolic link",
    setup=_symlink("syncs/t.toml", "CONFIG/nowhere.toml"),
)
add("sync-link-loop", "symbolic link loop", setup=_symlink("syncs/t.toml", "CONFIG/syncs/t.toml"))
add("sync-upper-suffix", "lower case", setup=_secret_file("syncs/crm.TOML", sync_toml().encode()))
add("sync-mixed-suffix", "lower case", setup=_secret_file("syncs/crm.Toml", sync_toml().encode()))
add("stray-top-level", "belong in syncs/", setup=_secret_file("crm.toml", sync_toml().encode()))
add(
    "stray-upper-top-level",
    "belong in syncs/",
    setup=_secret_file("CRM.TOML", sync_toml().encode()),
)
add(
    "daemon-file-wrong-case",
    "must be named syncd.toml",
    daemon=None,
    setup=_secret_file("Syncd.toml", DAEMON_OK.encode()),
)
add("syncs-wrong-case", "must be named syncs", setup=_mkdir("Syncs"))
add(
    "case-collision",
    "only in case",
    setup=_both(
        _secret_file("syncs/crm.toml", sync_toml().encode()),
        _secret_file("syncs/CRM.toml", sync_toml().encode()),
    ),
)
add("syncs-readme", "move other files out", setup=_secret_file("syncs/README.md", b"notes"))
add("syncs-backup-bak", "move other files out", setup=_secret_file("syncs/s.toml.bak", b"x"))
add("syncs-hidden-ok", setup=_secret_file("syncs/.s.toml.swp", b"\x00\xff"))
add("syncs-tilde-ok", setup=_secret_file("syncs/s.toml~", b"\x00\xff"))
add(
    "sync-bad-name",
    "file name must be",
    setup=_secret_file("syncs/bad name.toml", sync_toml().encode()),
)
add(
    "valid-sync-symlink",
    setup=_both(
        _secret_file("elsewhere.txt", sync_toml().encode()),
        _symlink("syncs/t.toml", "CONFIG/elsewhere.txt"),
    ),
)

# 8. contradictions
CONTRADICTIONS: dict[str, tuple[str, str]] = {
    "rules-b-to-a-in-a-to-b": (
        sync_toml('direction = "a-to-b"', tail='[[rules.b-to-a]]\nthen = [{ add_tag = "x" }]\n'),
        "would never apply",
    ),
    "rules-a-to-b-in-b-to-a": (
        sync_toml('direction = "b-to-a"', tail='[[rules.a-to-b]]\nthen = [{ add_tag = "x" }]\n'),
        "would never apply",
    ),
    "initial-against-direction": (
        sync_toml('direction = "a-to-b"\ninitial = "b-into-a"'),
        "goes against",
    ),
    "initial-against-direction-b": (
        sync_toml('direction = "b-to-a"\ninitial = "a-into-b"'),
        "goes against",
    ),
    "mapping-bare-custom-a": (
        sync_toml(tail='[[fields]]\na = "custom."\nb = "title"\n'),
        "not a custom field name",
    ),
    "mapping-bare-custom-b": (
        sync_toml(tail='[[fields]]\na = "title"\nb = "custom."\n'),
        "not a custom field name",
    ),
    "mapping-custom-space-only": (
        sync_toml(tail='[[fields]]\na = "title"\nb = "custom. "\n'),
        "not a custom field name",
    ),
    "mapping-twice": (
        sync_toml(
            tail='[[fields]]\na = "title"\nb = "custom.x"\n'
            '[[fields]]\na = "title"\nb = "custom.y"\n'
        ),
        "already mapped",
    ),
    "mapping-against-direction": (
        sync_toml(
            'direction = "a-to-b"',
            tail='[[fields]]\na = "title"\nb = "custom.x"\ndirection = "b-to-a"\n',
        ),
        "would never travel",
    ),
    "mapping-unknown-field": (
        sync_toml(tail='[[fields]]\na = "Nope"\nb = "custom.x"\n'),
        "has no field",
    ),
    "mapping-not-a-list": (sync_toml("fields = 5"), "expected [[fields]]"),
    "mapping-item-not-table": (sync_toml("fields = [5]"), "expected a table"),
    "mapping-field-int": (
        sync_toml(tail='[[fields]]\na = 5\nb = "custom.x"\n'),
        "expected a string",
    ),
    "mapping-missing-b": (sync_toml(tail='[[fields]]\na = "title"\n'), "missing field name"),
    "phone-region-zz": (sync_toml('phone_region = "ZZ"'), "not a region"),
    "phone-region-empty": (sync_toml('phone_region = ""'), "not a region"),
    "phone-region-int": (sync_toml("phone_region = 44"), "expected a string"),
    "phone-region-long": (sync_toml('phone_region = "GBR"'), "not a region"),
    "deletions-tag-toward-xero": (
        sync_toml('deletions = "tag"', XERO, SALESFLARE),
        "has no tags field",
    ),
    "deletions-tag-toward-xero-one-way": (
        sync_toml('direction = "b-to-a"\ndeletions = "tag"', XERO, SALESFLARE),
        "has no tags field",
    ),
    "add-tag-toward-xero": (
        sync_toml(
            'direction = "b-to-a"',
            XERO,
            SALESFLARE,
            '[[rules.b-to-a]]\nthen = [{ add_tag = "x" }]\n',
        ),
        "no writable tags field",
    ),
    "deletions-archive-toward-salesfire": (
        sync_toml('direction = "a-to-b"\ndeletions = "archive"', CSV_A, SALESFIRE),
        "cannot archive",
    ),
    "salesfire-read": (sync_toml("", CSV_A, SALESFIRE), "write-only"),
    "salesfire-source-of-merge": (
        sync_toml('direction = "b-to-a"\ninitial = "a-into-b"', SALESFIRE, CSV_B),
        "goes against",
    ),
    "salesfire-merge-from-it": (
        sync_toml('direction = "b-to-a"', CSV_A, SALESFIRE),
        "write-only",
    ),
    "same-file": (sync_toml(b=CSV_A), "same file"),
    "same-file-other-spelling": (
        sync_toml(b='connector = "csv"\npath = "./x/../a.csv"\n'),
        "same file",
    ),
    "deletion-tag-empty": (sync_toml('deletion_tag = ""'), "may not be empty"),
}
for label, (body, message) in CONTRADICTIONS.items():
    sync_case(f"contradiction-{label}", body, message)
add(
    "default-phone-region-zz",
    "not a region",
    key="defaults.phone_region",
    daemon='[defaults]\nphone_region = "ZZ"\n',
)
sync_case("phone-region-lower-ok", sync_toml('phone_region = "de"'))

# 9. connector settings: types and ranges
SETTINGS: dict[str, tuple[str, str, str, str]] = {
    # label: (a side, b side, key, message)
    "csv-delimiter-empty": (
        CSV_A + 'delimiter = ""\n',
        CSV_B,
        "a.delimiter",
        "exactly one character",
    ),
    "csv-delimiter-two": (
        CSV_A + 'delimiter = ";;"\n',
        CSV_B,
        "a.delimiter",
        "exactly one character",
    ),
    "csv-delimiter-quote": (CSV_A + "delimiter = '\"'\n", CSV_B, "a.delimiter", "double quote"),
    "csv-delimiter-newline": (CSV_A + 'delimiter = "\\n"\n', CSV_B, "a.delimiter", "line break"),
    "csv-delimiter-int": (CSV_A + "delimiter = 5\n", CSV_B, "a.delimiter", "expected a string"),
    "csv-batch-zero": (CSV_A + "batch_size = 0\n", CSV_B, "a.batch_size", "at least 1"),
    "csv-batch-negative": (CSV_A + "batch_size = -1\n", CSV_B, "a.batch_size", "at least 1"),
    "csv-batch-huge": (CSV_A + "batch_size = 1000000000\n", CSV_B, "a.batch_size", "at most"),
    "csv-batch-float": (CSV_A + "batch_size = 1.5\n", CSV_B, "a.batch_size", "whole number"),
    "csv-batch-inf": (CSV_A + "batch_size = inf\n", CSV_B, "a.batch_size", "whole number"),
    "csv-batch-string": (CSV_A + 'batch_size = "many"\n', CSV_B, "a.batch_size", "whole number"),
    "csv-batch-bool": (CSV_A + "batch_size = true\n", CSV_B, "a.batch_size", "boolean"),
    "csv-batch-bigint": (
        CSV_A + "batch_size = " + "9" * 40 + "\n",
        CSV_B,
        "a.batch_size",
        "out of range",
    ),
    "csv-path-empty": ('connector = "csv"\npath = ""\n', CSV_B, "a.path", "may not be empty"),
    "csv-path-missing": ('connector = "csv"\n', CSV_B, "a.path", "required by csv"),
    "csv-unknown-setting": (CSV_A + 'colour = "red"\n', CSV_B, "a.colour", "unknown setting"),
    "connector-missing": ('path = "a.csv"\n', CSV_B, "a.connector", "missing"),
    "connector-unknown": ('connector = "nosuch"\n', CSV_B, "a.connector", "unknown connector"),
    "connector-int": ("connector = 5\n", CSV_B, "a.connector", "missing"),
    "xero-page-zero": (XERO + "page_size = 0\n", SALESFLARE, "a.page_size", "at least 1"),
    "xero-page-huge": (XERO + "page_size = 100000\n", SALESFLARE, "a.page_size", "at most 1000"),
    "xero-minute-zero": (XERO + "minute_limit = 0\n", SALESFLARE, "a.minute_limit", "at least 1"),
    "xero-day-zero": (XERO + "day_limit = 0\n", SALESFLARE, "a.day_limit", "at least 1"),
    "xero-batch-101": (XERO + "batch_size = 101\n", SALESFLARE, "a.batch_size", "at most 100"),
    "xero-api-ftp": (
        XERO + 'api_url = "ftp://x"\n',
        SALESFLARE,
        "a.api_url",
        "http:// or https://",
    ),
    "xero-api-empty": (XERO + 'api_url = ""\n', SALESFLARE, "a.api_url", "http:// or https://"),
    "xero-api-no-host": (XERO + 'api_url = "https://"\n', SALESFLARE, "a.api_url", "host"),
    "xero-identity-bad": (
        XERO + 'identity_url = "identity"\n',
        SALESFLARE,
        "a.identity_url",
        "http",
    ),
    "xero-login-bad": (XERO + 'login_url = "javascript:x"\n', SALESFLARE, "a.login_url", "http"),
    "xero-redirect-bad": (
        XERO + 'redirect_uri = "localhost:8977"\n',
        SALESFLARE,
        "a.redirect_uri",
        "http",
    ),
    "xero-client-credentials-no-secret": (
        'connector = "xero"\nclient_id = "c1"\ngrant = "client_credentials"\n',
        SALESFLARE,
        "a.grant",
        "needs client_secret",
    ),
    "xero-grant-unknown": (XERO + 'grant = "password"\n', SALESFLARE, "a.grant", "must be one of"),
    "xero-listener-maybe": (
        XERO + 'auth_listener = "maybe"\n',
        SALESFLARE,
        "a.auth_listener",
        "true or false",
    ),
    "xero-secret-short": (
        'connector = "xero"\nclient_id = "c1"\nclient_secret = "abc"\n',
        SALESFLARE,
        "a.client_secret",
        "at least 8",
    ),
    "xero-client-id-missing": ('connector = "xero"\n', SALESFLARE, "a.client_id", "required"),
    "salesflare-cpm-negative": (
        XERO,
        SALESFLARE + "calls_per_minute = -5\n",
        "b.calls_per_minute",
        "at least 1",
    ),
    "salesflare-cpm-zero": (
        XERO,
        SALESFLARE + "calls_per_minute = 0\n",
        "b.calls_per_minute",
        "at least 1",
    ),
    "salesflare-concurrency-zero": (
        XERO,
        SALESFLARE + "concurrency = 0\n",
        "b.concurrency",
        "at least 1",
    ),
    "salesflare-backoff-nan": (
        XERO,
        SALESFLARE + "backoff_seconds = nan\n",
        "b.backoff_seconds",
        "finite",
    ),
    "salesflare-backoff-inf": (
        XERO,
        SALESFLARE + "backoff_seconds = inf\n",
        "b.backoff_seconds",
        "finite",
    ),
    "salesflare-backoff-negative": (
        XERO,
        SALESFLARE + "backoff_seconds = -1\n",
        "b.backoff_seconds",
        "at least 0",
    ),
    "salesflare-retries-zero": (
        XERO,
        SALESFLARE + "retry_attempts = 0\n",
        "b.retry_attempts",
        "at least 1",
    ),
    "salesflare-page-one": (XERO, SALESFLARE + "page_size = 1\n", "b.page_size", "at least 2"),
    "salesflare-base-ftp": (XERO, SALESFLARE + 'base_url = "ftp://x"\n', "b.base_url", "http"),
    "salesflare-create-accounts-int": (
        XERO,
        SALESFLARE + "create_accounts = 2\n",
        "b.create_accounts",
        "true or false",
    ),
    "salesflare-key-missing": (XERO, 'connector = "salesflare"\n', "b.api_key", "required"),
    "woodpecker-batch-zero": (CSV_A, WOODPECKER + "batch_size = 0\n", "b.batch_size", "at least 1"),
    "woodpecker-batch-huge": (
        CSV_A,
        WOODPECKER + "batch_size = 20001\n",
        "b.batch_size",
        "at most",
    ),
    "woodpecker-per-page-zero": (CSV_A, WOODPECKER + "per_page = 0\n", "b.per_page", "at least 1"),
    "woodpecker-per-page-huge": (CSV_A, WOODPECKER + "per_page = 1001\n", "b.per_page", "at most"),
    "woodpecker-base-bad": (CSV_A, WOODPECKER + 'base_url = "x/rest"\n', "b.base_url", "http"),
    "salesfire-concurrency-zero": (
        CSV_A,
        SALESFIRE + "concurrency = 0\n",
        "b.concurrency",
        "at least 1",
    ),
    "salesfire-rate-zero": (CSV_A, SALESFIRE + "rate_limit = 0\n", "b.rate_limit", "at least 1"),
    "salesfire-timeout-nan": (CSV_A, SALESFIRE + "timeout = nan\n", "b.timeout", "finite"),
    "salesfire-timeout-zero": (CSV_A, SALESFIRE + "timeout = 0\n", "b.timeout", "at least"),
    "salesfire-timeout-huge": (CSV_A, SALESFIRE + "timeout = 1e300\n", "b.timeout", "at most"),
    "salesfire-batch-zero": (CSV_A, SALESFIRE + "batch_size = 0\n", "b.batch_size", "at least 1"),
    "salesfire-url-bad": (
        CSV_A,
        'connector = "salesfire"\nurl = "https://x/y"\nsecret = "${env:FUZZ_SALESFIRE}"\n',
        "b.url",
        "must look like",
    ),
    "salesfire-no-list": (
        CSV_A,
        'connector = "salesfire"\nsite = "s"\nsecret = "${env:FUZZ_SALESFIRE}"\n',
        "b.list",
        "required",
    ),
    "salesfire-types-bad": (CSV_A, SALESFIRE + 'types = "SPAM"\n', "b.types", "MARKETING"),
    "salesfire-channels-empty": (
        CSV_A,
        SALESFIRE + 'channels = ""\n',
        "b.channels",
        "at least one",
    ),
    "salesfire-encoding-bad": (
        CSV_A,
        SALESFIRE + 'signature_encoding = "hex2"\n',
        "b.signature_encoding",
        "must be one of",
    ),
    "salesfire-base-bad": (CSV_A, SALESFIRE + 'base_url = "ftp://x"\n', "b.base_url", "http"),
    "salesfire-update-existing-bad": (
        CSV_A,
        SALESFIRE + 'update_existing = "sometimes"\n',
        "b.update_existing",
        "true or false",
    ),
}
for label, (side_a, side_b, key, message) in SETTINGS.items():
    top = 'direction = "a-to-b"' if "salesfire" in label or "salesfire" in side_b else ""
    sync_case(f"setting-{label}", sync_toml(top, side_a, side_b), message, key=key)
    if label.startswith(("xero-", "csv-")) and key.startswith("a."):
        # the same setting on the other side
        sync_case(
            f"setting-{label}-as-b",
            sync_toml(top, CSV_A if label.startswith("xero-") else side_b, side_a),
            message,
            key="b." + key[2:],
        )

# 10. the sync file's own keys, mistyped
KEY_CASES: dict[str, tuple[str, str, str]] = {
    "direction-int": ("direction = 5", "direction", "must be one of"),
    "direction-bad": ('direction = "sideways"', "direction", "must be one of"),
    "initial-bad": ('initial = "all"', "initial", "must be one of"),
    "winner-bool": ("winner = true", "winner", "must be one of"),
    "deletions-bad": ('deletions = "purge"', "deletions", "must be one of"),
    "match-list": ("match = []", "match", "must be one of"),
    "enabled-string": ('enabled = "yes"', "enabled", "true or false"),
    "deletion-tag-int": ("deletion_tag = 5", "deletion_tag", "expected a string"),
    "unknown-key": ('colour = "red"', "colour", "unknown key"),
    "a-not-table": ("a = 5", "a", "expected a table"),
}
for label, (top, key, message) in KEY_CASES.items():
    body = f"{top}\n[b]\n{CSV_B}\n" if top.startswith("a =") else sync_toml(top)
    sync_case(f"key-{label}", body, message, key=key)
sync_case("missing-b", f"[a]\n{CSV_A}\n", "missing table [b]", key="b")
DAEMON_KEYS: dict[str, tuple[str, str, str]] = {
    "daemon-not-table": ("daemon = 5\n", "daemon", "expected a table"),
    "api-not-table": ('api = "x"\n', "api", "expected a table"),
    "unknown-top": ("[logging]\n", "logging", "unknown key"),
    "unknown-daemon-key": ("[daemon]\ncolour = 1\n", "daemon.colour", "unknown key"),
    "log-format-bad": ('[daemon]\nlog_format = "xml"\n', "daemon.log_format", "must be one of"),
    "log-level-int": ("[daemon]\nlog_level = 5\n", "daemon.log_level", "expected a string"),
    "log-level-bad": ('[daemon]\nlog_level = "loud"\n', "daemon.log_level", "must be one of"),
    "state-dir-int": ("[daemon]\nstate_dir = 5\n", "daemon.state_dir", "expected a string"),
    "max-runs-negative": (
        "[daemon]\nmax_concurrent_runs = -1\n",
        "daemon.max_concurrent_runs",
        "must be from 0",
    ),
    "max-runs-string": (
        '[daemon]\nmax_concurrent_runs = "4"\n',
        "daemon.max_concurrent_runs",
        "expected a whole number",
    ),
    "listen-bad": ('[api]\nlisten = "nowhere"\n', "api.listen", "HOST:PORT"),
    "listen-port-zero": ('[api]\nlisten = "127.0.0.1:0"\n', "api.listen", "HOST:PORT"),
    "listen-port-huge": (
        '[api]\nlisten = "127.0.0.1:99999999999999999999"\n',
        "api.listen",
        "HOST:PORT",
    ),
    "listen-superscript": ('[api]\nlisten = "127.0.0.1:8²"\n', "api.listen", "HOST:PORT"),
    "listen-unix-empty": ('[api]\nlisten = "unix:"\n', "api.listen", "socket path"),
    "listen-int": ("[api]\nlisten = 8765\n", "api.listen", "expected a string"),
    "token-int": ("[api]\ntoken = 5\n", "api.token", "expected a string"),
}
for label, (text, key, message) in DAEMON_KEYS.items():
    add(f"daemon-{label}", message, key=key, daemon=text)

# 11. several problems at once: all are reported
add(
    "many-problems",
    ("interval", "winner", "a.batch_size", "b.delimiter", "phone_region", "crm.TOML"),
    sync=sync_toml(
        'interval = "1ms"\nwinner = "c"\nphone_region = "ZZ"',
        CSV_A + "batch_size = 0\n",
        CSV_B + 'delimiter = ""\n',
    ),
    daemon='[daemon]\nshutdown_deadline = "nan"\n',
    setup=_secret_file("syncs/crm.TOML", b"x"),
)


# --- running them -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def all_plugins() -> Plugins:
    return load_plugins(extra=[memory])


def _environment(monkeypatch: pytest.MonkeyPatch, case: Case, config: Path) -> None:
    for name in [n for n in os.environ if n.startswith("SYNCD_")]:
        monkeypatch.delenv(name)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    for name, value in {**SECRETS, **case.env}.items():
        monkeypatch.setenv(name, value.replace("INDIRECT", str(config / "indirect.txt")))


def _materialise(case: Case, root: Path) -> Path:
    """The case's files, with SECRET standing for the secret file's path."""
    if isinstance(case.sync, str) and "@SECRETFILE@" in case.sync:
        secret = root / "config" / "secret.txt"
        case = Case(**{**case.__dict__, "sync": case.sync.replace("@SECRETFILE@", str(secret))})
    return build(root, case)


def check_problems(error: ConfigError, case: Case, config: Path) -> None:
    lines = [problem.line() for problem in error.problems]
    assert lines, case.name
    for problem, line in zip(error.problems, lines, strict=True):
        assert "\n" not in line and "\r" not in line, line
        assert len(line) < 600, line
        assert problem.file and problem.file.startswith(str(config)), line
        assert "Traceback" not in line
    joined = "\n".join(lines)
    for expected in case.expect:
        assert expected in joined, f"{case.name}: {expected!r} not in:\n{joined}"
    if case.key is not None:
        assert any(p.key and case.key in p.key for p in error.problems), (
            f"{case.name}: no line names {case.key}:\n{joined}"
        )
    for secret in (v for v in SECRETS.values() if len(v) >= 8):
        assert secret not in joined


def works(config: Config, root: Path) -> None:
    """A valid config genuinely runs: the connectors take their settings, and the durations fit
    the scheduler and the clock arithmetic."""
    now = datetime.now(UTC)
    assert SHUTDOWN_DEADLINE.minimum <= config.daemon.shutdown_deadline <= SHUTDOWN_DEADLINE.maximum
    for sync in config.syncs.values():
        assert INTERVAL.minimum <= sync.interval <= INTERVAL.maximum
        assert FULL_EVERY.minimum <= sync.full_every <= FULL_EVERY.maximum
        trigger = IntervalTrigger(seconds=sync.interval, start_date=now, timezone=UTC)
        assert trigger.get_next_fire_time(None, now) is not None
        assert now + timedelta(seconds=sync.full_every) > now
        for side in ("a", "b"):
            side_config = sync.side(side)
            context = ConnectorContext(
                sync.name, side, root / "state", config_dir=sync.path.parent.parent
            )
            side_config.connector_class(side_config.settings, context)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_generated_config_is_refused_cleanly_or_works(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, all_plugins: Plugins
) -> None:
    config = _materialise(case, tmp_path)
    _environment(monkeypatch, case, config)
    try:
        loaded = load_config(config, all_plugins, tmp_path / "state")
    except ConfigError as exc:
        assert not case.valid, f"{case.name} should be valid, got:\n{exc}"
        check_problems(exc, case, config)
        return
    assert case.valid, f"{case.name} was accepted although invalid"
    works(loaded, tmp_path)


def test_there_are_enough_cases() -> None:
    names = [case.name for case in CASES]
    assert len(names) == len(set(names))
    assert len(CASES) >= 480, len(CASES)


# --- through the real command -----------------------------------------------------------------

CLI_CASES = [
    "valid-csv-csv",
    "valid-xero-salesflare",
    "sync-bytes-latin1",
    "daemon-bytes-utf16le",
    "secret-bytes-lone-ff",
    "interval-inf",
    "interval-nan",
    "interval-1e308",
    "interval-huge-days",
    "interval-1ms",
    "full_every-inf",
    "shutdown-nan",
    "rule-then-int",
    "rule-if-int",
    "rule-regex-3000-groups",
    "sync-deep-arrays",
    "daemon-deep-inline-tables",
    "sync-long-int",
    "ref-secret-setting-no-user",
    "ref-secret-setting-dev-zero",
    "ref-secret-setting-upper-scheme",
    "ref-xero-tenant-bare-dollar",
    "ref-daemon-token-unterminated",
    "daemon-file-fifo",
    "sync-file-fifo",
    "secret-file-fifo",
    "setting-csv-delimiter-empty",
    "setting-xero-page-zero",
    "setting-salesflare-backoff-nan",
    "syncs-is-a-file",
    "case-collision",
    "stray-top-level",
    "contradiction-deletions-tag-toward-xero",
    "contradiction-initial-against-direction",
    "contradiction-same-file",
    "many-problems",
]
BY_NAME = {case.name: case for case in CASES}


def _cli(
    config: Path, root: Path, *args: str, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SYNCD, "--config", str(config), "--state-dir", str(root / "state"), *args],
        capture_output=True,
        text=True,
        env=cli_env(SYNCD_PLUGIN_MODULES="syncd.testing.memory", **env),
        stdin=subprocess.DEVNULL,
        timeout=120,
    )


@pytest.mark.parametrize("name", CLI_CASES)
def test_syncd_check_reports_each_problem_on_one_line_and_exits_2(
    name: str, tmp_path: Path
) -> None:
    case = BY_NAME[name]
    config = _materialise(case, tmp_path)
    env = {
        k: v.replace("INDIRECT", str(config / "indirect.txt"))
        for k, v in {**SECRETS, **case.env}.items()
    }
    result = _cli(config, tmp_path, "check", env=env)
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    for secret in (v for v in SECRETS.values() if len(v) >= 8):
        assert secret not in output
    if case.valid:
        assert result.returncode == 0, output
        assert ": OK" in result.stdout
        if name == "valid-csv-csv":
            (config / "a.csv").write_text("email,first_name\nann@example.com,Ann\n")
            run = _cli(config, tmp_path, "sync", "s", env=env)
            assert run.returncode == 0, run.stdout + run.stderr
            assert "ann@example.com" in (config / "b.csv").read_text()
        return
    assert result.returncode == 2, output
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert lines and all(line.startswith(f"error: {config}") for line in lines), result.stderr
    for expected in case.expect:
        assert expected in result.stderr, result.stderr
    if name == "many-problems":
        assert len(lines) >= 7


def test_check_connect_with_a_bad_delimiter_exits_2_without_a_traceback(tmp_path: Path) -> None:
    config = build(tmp_path, BY_NAME["setting-csv-delimiter-empty"])
    result = _cli(config, tmp_path, "check", "--connect", env={})
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert "a.delimiter: must be exactly one character" in result.stderr


def test_a_valid_config_passes_check_connect(tmp_path: Path) -> None:
    config = build(tmp_path, BY_NAME["valid-csv-csv"])
    result = _cli(config, tmp_path, "check", "--connect", env={})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAILED" not in result.stdout


# --- generated by hypothesis ------------------------------------------------------------------

durations = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.text(alphabet="0123456789.smhdw x-", max_size=30),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=2),
)


@given(value=durations)
@settings(max_examples=300, deadline=None)
def test_any_duration_is_in_bounds_or_refused(value: object) -> None:
    try:
        seconds = parse_duration(value, Path("f.toml"), "interval", INTERVAL)
    except ConfigError as exc:
        assert exc.line().startswith("f.toml: interval: ")
        assert "\n" not in exc.line()
        return
    assert math.isfinite(seconds)
    assert INTERVAL.minimum <= seconds <= INTERVAL.maximum


@given(text=st.text(alphabet=st.sampled_from(list("${}:envfilecrdENVX_9/ ~.$")), max_size=24))
@settings(max_examples=400, deadline=None)
def test_any_text_with_dollars_resolves_or_is_refused(text: str) -> None:
    os.environ.setdefault("X", "resolved-value-123")
    try:
        resolved = resolve(text, Path("f.toml"), "a.key")
    except ConfigError as exc:
        assert exc.key == "a.key" and "\n" not in exc.line()
        return
    if "$" not in text:
        assert resolved.value == text
    # nothing that looks like a reference survives as a literal
    literal = text.replace("$$", "")
    for reference in resolved.references:
        literal = literal.replace(reference, "")
    assert "${" not in literal
    assert not any(
        literal[i] == "$" and (literal[i + 1 : i + 2].isalpha() or literal[i + 1 : i + 2] == "_")
        for i in range(len(literal))
    )


@given(data=st.binary(max_size=200))
@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_any_bytes_as_a_sync_file_load_or_are_refused(
    data: bytes, tmp_path: Path, all_plugins: Plugins
) -> None:
    config = tmp_path / "bytes"
    write(config / "syncs" / "s.toml", data)
    try:
        load_config(config, all_plugins, tmp_path / "state")
    except ConfigError as exc:
        for problem in exc.problems:
            assert "\n" not in problem.line() and problem.file


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value).replace("inf", "inf").replace("nan", "nan")
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return "{ " + ", ".join(f'"{k}" = {_toml_value(v)}' for k, v in value.items()) + " }"


scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(
        [
            "10m",
            "1ms",
            "a-to-b",
            "two-way",
            "merge",
            "tag",
            "csv",
            "x.csv",
            "ZZ",
            "${env:X}",
            "$X",
            "custom.",
            "(a+)+",
        ]
    ),
    st.text(max_size=8),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.sampled_from(["field", "op", "value", "add_tag", "set", "if", "then", "a", "b"]),
            inner,
            max_size=3,
        ),
    ),
    max_leaves=8,
)
# every key a sync file takes, except the side tables the strategy builds itself
SYNC_KEYS = sorted(set(ALL_SYNC_KEYS) - {"a", "b"})
SIDE_KEYS = ["path", "delimiter", "batch_size"]


@given(
    top=st.dictionaries(st.sampled_from(SYNC_KEYS), values, max_size=4),
    side=st.dictionaries(st.sampled_from(SIDE_KEYS), scalars, max_size=3),
)
@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_any_generated_sync_file_is_refused_cleanly_or_works(
    top: dict[str, Any], side: dict[str, Any], tmp_path: Path, all_plugins: Plugins
) -> None:
    config = tmp_path / "gen"
    lines = [f"{key} = {_toml_value(value)}" for key, value in top.items()]
    a = CSV_A + "".join(f"{k} = {_toml_value(v)}\n" for k, v in side.items() if k != "path")
    write(config / "syncs" / "s.toml", sync_toml("\n".join(lines), a, CSV_B))
    os.environ.setdefault("X", "resolved-value-123")
    try:
        loaded = load_config(config, all_plugins, tmp_path / "state")
    except ConfigError as exc:
        for problem in exc.problems:
            assert "\n" not in problem.line() and problem.file
        return
    works(loaded, tmp_path)


def test_the_readme_states_the_limits() -> None:
    readme = " ".join((Path(__file__).resolve().parents[1] / "README.md").read_text().split())
    for text in ("at least 10 seconds", "at most 30 days", "syncd check", "one line each"):
        assert text in readme


def test_every_problem_names_its_file(tmp_path: Path, all_plugins: Plugins) -> None:
    case = BY_NAME["many-problems"]
    config = _materialise(case, tmp_path)
    with pytest.raises(ConfigError) as info:
        load_config(config, all_plugins, tmp_path / "state")
    files = {Path(p.file or "").name for p in info.value.problems}
    assert {"syncd.toml", "s.toml", "crm.TOML"} <= files
    assert textwrap.dedent(str(info.value)).count("\n") == len(info.value.problems) - 1
