#!/bin/sh
# Installs what the console's browser tests drive (tests/browser_support.py): Debian's chromium
# (Playwright's own browser download cannot be used here; Playwright for Python drives the system
# Chromium through executable_path). For `make test`; safe to run again; needs no terminal.
set -eu

say() { printf 'install-browser: %s\n' "$*"; }

CHROMIUM=${SYNCD_CHROMIUM:-/usr/bin/chromium}
if [ -x "$CHROMIUM" ]; then
    exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
    as_root=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root="sudo -n"
else
    say "$CHROMIUM is missing: install Debian's chromium package (apt-get install chromium) as root" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    say "$CHROMIUM is missing and apt-get is not available to install it" >&2
    exit 1
fi
say "installing Debian's chromium package for the console's browser tests"
$as_root apt-get update -qq </dev/null
DEBIAN_FRONTEND=noninteractive $as_root apt-get install -y -qq --no-install-recommends chromium </dev/null >/dev/null
if [ ! -x "$CHROMIUM" ]; then
    say "the chromium package did not install $CHROMIUM" >&2
    exit 1
fi
say "installed $("$CHROMIUM" --version 2>/dev/null || echo chromium)"
