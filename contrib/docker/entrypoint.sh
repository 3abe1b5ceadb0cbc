#!/bin/sh
# The container's entrypoint, under tini: `syncd-entrypoint ARGS` runs `syncd ARGS`.
#
# Started as root (the image's default), it runs syncd as PUID:PGID (default 10001:10001,
# linuxserver.io style: set them to the owner of the host folder mounted on /data), making
# the state directory theirs first. Started as another user (`--user`, Kubernetes'
# runAsUser), it runs syncd as that user and PUID/PGID do not apply. TZ (e.g.
# Europe/Amsterdam) sets the time zone from the image's tzdata. Files are created 0600.
set -eu

say() { printf 'syncd-entrypoint: %s\n' "$*" >&2; }

if [ -n "${TZ:-}" ] && [ ! -f "/usr/share/zoneinfo/$TZ" ]; then
    say "TZ=$TZ: no such time zone (names as in /usr/share/zoneinfo, e.g. Europe/Amsterdam)"
    exit 2
fi
umask 0077

if [ "$(id -u)" != 0 ]; then
    if [ -n "${PUID:-}${PGID:-}" ]; then
        say "running as uid $(id -u) (--user); PUID/PGID apply only when the container starts as root"
    fi
    exec syncd "$@"
fi

PUID=${PUID:-10001}
PGID=${PGID:-10001}
for pair in "PUID=$PUID" "PGID=$PGID"; do
    case ${pair#*=} in
    '' | *[!0-9]*) say "$pair: expected a number (a uid/gid such as 1000)"; exit 2 ;;
    esac
done
if [ "$PUID" = 0 ] || [ "$PGID" = 0 ]; then
    say "PUID=$PUID PGID=$PGID: syncd does not run as root; use the owner of the data folder"
    exit 2
fi

state=${SYNCD_STATE_DIR:-/data}
mkdir -p "$state"
if [ "$(stat -c %u:%g "$state")" != "$PUID:$PGID" ]; then
    say "$state belongs to $(stat -c %u:%g "$state"): handing it to $PUID:$PGID"
    chown -R "$PUID:$PGID" "$state"
fi
chmod 0700 "$state"

export HOME="$state"
exec setpriv --reuid="$PUID" --regid="$PGID" --clear-groups \
    --inh-caps=-all --bounding-set=-all --no-new-privs -- syncd "$@"
