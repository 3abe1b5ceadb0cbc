#!/bin/sh
# Builds what `make image-test` runs, from the cached debootstrap bases (contrib/image/base.sh):
#   * the real Dockerfile, with --build-arg PYTHON_IMAGE=<the python base>  -> $SYNCD_TEST_IMAGE
#   * contrib/image/Containerfile.systemd on the systemd base: syncd installed as
#     docs/systemd.md says, the unit in /etc/systemd/system                -> $SYNCD_TEST_SYSTEMD_IMAGE
# Prints NAME=VALUE lines (the images, the image's size and the python base) on stdout; progress on stderr.
# podman caches the build steps, so a second run with no change is quick.
set -eu
cd "$(dirname "$0")/../.."

IMAGE=${SYNCD_TEST_IMAGE:-localhost/syncd:image-test}
SYSTEMD_IMAGE=${SYNCD_TEST_SYSTEMD_IMAGE:-localhost/syncd-systemd:image-test}
RUNTIME=${PODMAN_RUNTIME:-/usr/sbin/runc}
# the host's CA bundle, so that pip inside the build reaches PyPI over TLS
BUILD="podman --runtime $RUNTIME build --quiet --format docker --network host -v /etc/ssl/certs:/etc/ssl/certs:ro"

say() { printf 'build.sh: %s\n' "$*" >&2; }
elapsed() { echo $(($(date +%s) - $1))s; }

start=$(date +%s)
python_base=$(sh contrib/image/base.sh python | tail -1)
say "python base $python_base ($(elapsed "$start"))"

start=$(date +%s)
$BUILD --build-arg "PYTHON_IMAGE=$python_base" -t "$IMAGE" -f Dockerfile . >/dev/null
size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
say "$IMAGE: $((size / 1000000)) MB ($(elapsed "$start"))"

start=$(date +%s)
systemd_base=$(sh contrib/image/base.sh systemd | tail -1)
$BUILD --build-arg "BASE=$systemd_base" -t "$SYSTEMD_IMAGE" -f contrib/image/Containerfile.systemd . >/dev/null
say "$SYSTEMD_IMAGE ($(elapsed "$start"))"

echo "SYNCD_TEST_IMAGE=$IMAGE"
echo "SYNCD_TEST_SYSTEMD_IMAGE=$SYSTEMD_IMAGE"
echo "SYNCD_TEST_IMAGE_SIZE=$size"
echo "SYNCD_TEST_PYTHON_BASE=$python_base"
