#!/bin/sh
# The pytest suite with CPU hogs beside it, for `make test-under-load` (issue 21: no test may
# depend on timing, so the suite must stay green on a loaded machine).
#   * installs Debian's stress-ng package with apt-get if it is missing (as root, or through
#     passwordless sudo);
#   * starts `stress-ng --cpu 2` (HOGS=N for another count) in a process group of its own, waits
#     until its workers run, then runs the whole pytest suite (extra arguments go to pytest);
#   * stops stress-ng, its workers with it, whatever happens: when pytest ends (passed or
#     failed, Ctrl-C included) the script stops the group and exits with pytest's status; if
#     the script itself is killed, even with kill -9, the kernel sends stress-ng SIGTERM (its
#     parent-death signal, set by setpriv); and stress-ng carries a time limit of its own.
set -eu

cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
BIN="$VENV/bin"
HOGS=${HOGS:-2}
#: stress-ng's own limit: longer than any suite run, the last guard against an orphan
LIMIT=${STRESS_LIMIT:-2h}

say() { printf 'test-under-load: %s\n' "$*"; }

if ! command -v stress-ng >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ]; then
        as_root=""
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        as_root="sudo -n"
    else
        say "stress-ng is missing: install Debian's stress-ng package (apt-get install stress-ng) as root" >&2
        exit 1
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        say "stress-ng is missing and apt-get is not available to install it" >&2
        exit 1
    fi
    say "installing Debian's stress-ng package"
    $as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null
    $as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        stress-ng </dev/null >/dev/null 2>&1
fi

hogs=""
stop_hogs() {
    if [ -n "$hogs" ]; then
        # the whole group, stress-ng and the workers it forked (a negative pid names a group;
        # dash needs the `--` before it); KILL if TERM was not enough after 30 s
        kill -s TERM -- "-$hogs" 2>/dev/null || true
        tries=0
        while kill -s 0 -- "-$hogs" 2>/dev/null && [ "$tries" -lt 300 ]; do
            tries=$((tries + 1))
            sleep 0.1
        done
        kill -s KILL -- "-$hogs" 2>/dev/null || true
        wait "$hogs" 2>/dev/null || true
        hogs=""
        say "stress-ng stopped"
    fi
}
trap 'stop_hogs' EXIT
trap 'stop_hogs; exit 130' INT
trap 'stop_hogs; exit 143' TERM

# setsid: a process group of its own (setsid execs in place here, as does setpriv, so $! is
# stress-ng's pid and its group's id); setpriv: SIGTERM to stress-ng when this script dies
setsid setpriv --pdeathsig TERM stress-ng --cpu "$HOGS" --timeout "$LIMIT" --quiet \
    </dev/null >/dev/null 2>&1 &
hogs=$!

# wait (on a state, with a generous deadline) until the workers are running
workers() { pgrep -c -P "$hogs" 2>/dev/null || true; }
tries=0
while [ "$(workers)" -lt "$HOGS" ]; do
    if ! kill -0 "$hogs" 2>/dev/null; then
        say "stress-ng exited before its workers started" >&2
        hogs=""
        exit 1
    fi
    tries=$((tries + 1))
    if [ "$tries" -gt 600 ]; then
        say "stress-ng's workers did not start within 60 s" >&2
        exit 1
    fi
    sleep 0.1
done
say "stress-ng --cpu $HOGS running (pid $hogs) on $(nproc) CPUs; load: $(cut -d' ' -f1-3 /proc/loadavg)"

started=$(date +%s)
status=0
"$BIN/pytest" -q "$@" || status=$?
took=$(($(date +%s) - started))
say "pytest exited $status after ${took}s beside $HOGS CPU hogs; load: $(cut -d' ' -f1-3 /proc/loadavg)"
stop_hogs
exit "$status"
