#!/bin/sh
# `make image-test`: installs podman, runc and debootstrap (Debian's packages) when missing,
# builds the images (contrib/image/build.sh: cached debootstrap bases, the real Dockerfile, a
# systemd machine) and runs tests_image/ against them. Not part of `make test`; .ci/run runs
# it after `make test` when the tools can be installed. Arguments (PYTEST_ARGS) go to pytest
# instead of tests_image.
set -eu
cd "$(dirname "$0")/../.."
VENV=${VENV:-.venv}

say() { printf 'image-test: %s\n' "$*" >&2; }

missing=""
command -v podman >/dev/null 2>&1 || missing="$missing podman"
[ -x /usr/sbin/runc ] || missing="$missing runc"
command -v debootstrap >/dev/null 2>&1 || missing="$missing debootstrap"
if [ -n "$missing" ]; then
    if [ "$(id -u)" -eq 0 ]; then
        as_root=""
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        as_root="sudo -n"
    else
        say "missing:$missing; install them as root (apt-get install$missing)"
        exit 1
    fi
    say "installing Debian's$missing"
    $as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null
    # shellcheck disable=SC2086
    $as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        $missing uidmap </dev/null >/dev/null
fi

start=$(date +%s)
built=$(sh contrib/image/build.sh)
say "images built in $(($(date +%s) - start))s"
# shellcheck disable=SC2046
export $(printf '%s\n' "$built" | grep '^SYNCD_TEST_')
printf '%s\n' "$built" | sed 's/^/image-test: /' >&2

start=$(date +%s)
status=0
[ $# -gt 0 ] || set -- tests_image
"$VENV/bin/pytest" -q -p no:cacheprovider --timeout 900 -rA "$@" || status=$?
say "tests took $(($(date +%s) - start))s"
exit $status
