#!/bin/sh
# Builds a Debian bookworm base image with debootstrap and `podman import`s it, for
# `make image-test` (no image registry is reachable here, Debian's package mirror is).
#
#   contrib/image/base.sh python     -> localhost/syncd-base-python:<hash>
#   contrib/image/base.sh systemd    -> localhost/syncd-base-systemd:<hash>
#
# Prints the image's name on its last line. The rootfs is kept as a tarball under
# $SYNCD_IMAGE_CACHE (default ~/.cache/syncd-image), named by a hash of the recipe (the kind,
# its packages, the suite, the mirrors and RECIPE below), so a second run imports it instead of
# running debootstrap again, and a changed recipe builds a new one. Bump RECIPE when a step
# that changes the tree changes.
#
# "python" stands in for the official python:3.11-slim-bookworm: Debian bookworm's own
# python3 (3.11) with python3-venv (venv + ensurepip), python-is-python3 (a `python`
# command, which the Dockerfile and most derived images call), ca-certificates, netbase
# and tzdata (what the official image adds to debian:bookworm-slim), LANG=C.UTF-8, apt
# sources with bookworm-updates and bookworm-security (upgraded at build time), and the
# slim images' dpkg filter that leaves out docs, man pages and translations.
# "systemd" is the same plus systemd and systemd-sysv, to boot with systemd as PID 1.
set -eu

kind=${1:?usage: base.sh python|systemd}
case $kind in
python) extra="" ;;
systemd) extra=",systemd,systemd-sysv,dbus" ;;
*) echo "base.sh: unknown kind '$kind' (python or systemd)" >&2; exit 2 ;;
esac

RECIPE=2
SUITE=bookworm
MIRROR=${SYNCD_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${SYNCD_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
PACKAGES="python3,python3-venv,python-is-python3,ca-certificates,netbase,tzdata$extra"
cache=${SYNCD_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/syncd-image}

say() { printf 'base.sh: %s\n' "$*" >&2; }

# debootstrap mounts /proc (and more) inside the tree: unmount before removing anything, and
# never cross into another file system
cleanup() {
    [ -n "${root:-}" ] && [ -d "$root" ] || return 0
    awk -v r="$root/" 'index($2, r) == 1 { print $2 }' /proc/mounts | sort -r | while read -r m; do
        umount -l "$m" || true
    done
    rm -rf --one-file-system "$root"
}

hash=$(echo "$RECIPE $kind $PACKAGES $SUITE $MIRROR $SECURITY_MIRROR" | sha256sum | cut -c1-12)
image="localhost/syncd-base-$kind:$hash"
tarball="$cache/base-$kind-$hash.tar.gz"

if podman image exists "$image"; then
    say "$image is there"
    echo "$image"
    exit 0
fi

if [ ! -s "$tarball" ]; then
    mkdir -p "$cache"
    root=$(mktemp -d "$cache/rootfs-$kind.XXXXXX")
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    say "debootstrap $SUITE ($PACKAGES) into $root"
    # the slim images' filter, in place before the first package is unpacked
    mkdir -p "$root/etc/dpkg/dpkg.cfg.d"
    cat >"$root/etc/dpkg/dpkg.cfg.d/docker-slim" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
CFG
    debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$root" "$MIRROR" >"$cache/debootstrap-$kind.log" 2>&1 || {
        say "debootstrap failed; the end of $cache/debootstrap-$kind.log:"
        tail -20 "$cache/debootstrap-$kind.log" >&2
        exit 1
    }
    # Debian's official images' apt settings: no package cache files, no downloaded .debs,
    # gzipped lists, no translations (an `apt-get install` layer stays small)
    cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'CFG'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
CFG
    printf 'Acquire::GzipIndexes "true";\nAcquire::CompressionTypes::Order:: "gz";\n' \
        >"$root/etc/apt/apt.conf.d/docker-gzip-indexes"
    printf 'Acquire::Languages "none";\n' >"$root/etc/apt/apt.conf.d/docker-no-languages"
    printf 'APT::AutoRemove::SuggestsImportant "false";\n' \
        >"$root/etc/apt/apt.conf.d/docker-autoremove-suggests"
    cat >"$root/etc/apt/sources.list" <<SRC
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb $SECURITY_MIRROR $SUITE-security main
SRC
    # the security fixes the official images carry; then the slim images' cleanup
    cp /etc/resolv.conf "$root/etc/resolv.conf"
    chroot "$root" sh -ec '
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get -y -qq upgrade >/dev/null
        apt-get clean
        rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/*.log /var/log/apt/* \
            /usr/share/doc/*/changelog* /usr/share/man/* /usr/share/info/*
        find /usr/share/locale -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
        find / -xdev -name __pycache__ -type d -prune -exec rm -rf {} +
    ' >>"$cache/debootstrap-$kind.log" 2>&1 || {
        say "updating the tree failed; the end of $cache/debootstrap-$kind.log:"
        tail -20 "$cache/debootstrap-$kind.log" >&2
        exit 1
    }
    : >"$root/etc/resolv.conf"
    printf 'syncd-base\n' >"$root/etc/hostname"
    if [ "$kind" = systemd ]; then
        # nothing that needs hardware or a console: a container boots to multi-user quickly
        chroot "$root" systemctl mask getty@tty1.service console-getty.service \
            systemd-udevd.service systemd-udevd-control.socket systemd-udevd-kernel.socket \
            systemd-resolved.service systemd-timesyncd.service >/dev/null 2>&1 || true
        chroot "$root" systemctl set-default multi-user.target >/dev/null 2>&1
    fi
    tar --numeric-owner --one-file-system -C "$root" -czf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    cleanup
    trap - EXIT
    say "cached $tarball ($(du -h "$tarball" | cut -f1))"
fi

say "podman import $tarball as $image"
if [ "$kind" = systemd ]; then
    podman import --quiet --change 'ENV LANG=C.UTF-8' --change 'CMD ["/sbin/init"]' \
        --change 'STOPSIGNAL SIGRTMIN+3' "$tarball" "$image" >/dev/null
else
    podman import --quiet --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' "$tarball" "$image" >/dev/null
fi
echo "$image"
