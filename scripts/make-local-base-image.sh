#!/usr/bin/env bash
# make-local-base-image.sh: one Debian base image for the compose stack on a
# machine that reaches no container registry (used by scripts/compose-smoke.sh).
#
#   debootstrap --variant=minbase from the Debian mirror this machine's apt
#   already uses (read from the apt sources at run time: no host name is
#   written anywhere), then apt-get install (in a chroot) PostgreSQL, nginx and
#   curl, then `docker import` as $LOCAL_BASE_IMAGE.
#
# One image serves as the runtime of the Rust binaries (it has curl for the
# healthchecks), as the base of the local Postgres image (docker/postgres-local),
# as nginx and (tinyproxy) as the smoke test's forward proxy. With
# LOCAL_BUILD_IMAGE set, the same chroot then gets a C compiler (gcc,
# libc6-dev) and is imported under that tag: the base of the local Rust image
# (scripts/make-local-rust-image.sh), since crates such as ring build C. With
# LOCAL_BROWSER_IMAGE set, it then gets Debian's Chromium and is imported
# under that tag: the browser workers' runtime, built without apt inside a
# container. certbot is in the base, so the VPS stack's certbot service runs
# for real in the test. Each tag is skipped when it exists (FORCE=1 rebuilds).
#
# Needs root and a reachable docker engine. Env: LOCAL_BASE_IMAGE (default
# carfeed-local/base:<codename>), LOCAL_BROWSER_IMAGE (default none), WORK
# (scratch dir, default a new /tmp/carfeed-base.XXXXXX), DOCKER (CLI, default
# docker), FORCE.
set -euo pipefail

DOCKER=${DOCKER:-docker}
. /etc/os-release
SUITE=${SUITE:-${VERSION_CODENAME:-bookworm}}
TAG=${LOCAL_BASE_IMAGE:-carfeed-local/base:$SUITE}
BUILD_TAG=${LOCAL_BUILD_IMAGE:-}
BROWSER_TAG=${LOCAL_BROWSER_IMAGE:-}
PACKAGES="postgresql nginx-light curl ca-certificates tinyproxy certbot openssl"
BUILD_PACKAGES="gcc libc6-dev"
BROWSER_PACKAGES="chromium fonts-liberation"

log() { printf '[base-image %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

[ "$(id -u)" = 0 ] || { echo "make-local-base-image.sh: must run as root (debootstrap, chroot)" >&2; exit 1; }
$DOCKER info >/dev/null 2>&1 || { echo "make-local-base-image.sh: no docker engine answers" >&2; exit 1; }
missing() { [ "${FORCE:-0}" = 1 ] || ! $DOCKER image inspect "$1" >/dev/null 2>&1; }
NEED_BASE=0
NEED_BUILD=0
NEED_BROWSER=0
if missing "$TAG"; then NEED_BASE=1; else log "$TAG already present (FORCE=1 rebuilds it)"; fi
if [ -n "$BUILD_TAG" ]; then
    if missing "$BUILD_TAG"; then NEED_BUILD=1; else log "$BUILD_TAG already present (FORCE=1 rebuilds it)"; fi
fi
if [ -n "$BROWSER_TAG" ]; then
    if missing "$BROWSER_TAG"; then NEED_BROWSER=1; else log "$BROWSER_TAG already present (FORCE=1 rebuilds it)"; fi
fi
[ "$NEED_BASE" = 1 ] || [ "$NEED_BUILD" = 1 ] || [ "$NEED_BROWSER" = 1 ] || exit 0

# The first URI of the enabled "deb" sources for the main suite (want=main)
# or the security suite (want=security): deb822 *.sources, then one-line lists.
apt_uri() {
    local want=$1 f uri
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        uri=$(awk -v want="$want" 'BEGIN { RS = ""; FS = "\n" }
            { u = ""; s = ""; on = 1
              for (i = 1; i <= NF; i++) {
                if ($i ~ /^URIs:/) { u = $i; sub(/^URIs:[ \t]*/, "", u); split(u, a, /[ \t]+/); u = a[1] }
                if ($i ~ /^Suites:/) s = $i
                if ($i ~ /^Enabled:[ \t]*no/) on = 0
                if ($i ~ /^Types:/ && $i !~ /[ \t]deb([ \t]|$)/) on = 0 }
              if (u == "" || !on) next
              if ((want == "security") == (s ~ /-security/)) { print u; exit } }' "$f")
        [ -n "$uri" ] && { echo "${uri%/}"; return 0; }
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        uri=$(awk -v want="$want" '$1 == "deb" {
            if ((want == "security") != ($0 ~ /-security/)) next
            for (i = 2; i <= NF; i++) if ($i ~ /^[a-z+]+:\/\//) { print $i; exit } }' "$f")
        [ -n "$uri" ] && { echo "${uri%/}"; return 0; }
    done
    return 1
}

MIRROR=$(apt_uri main) || { echo "make-local-base-image.sh: no Debian mirror in the apt sources" >&2; exit 1; }
SECURITY=$(apt_uri security || true)
command -v debootstrap >/dev/null || { log "installing debootstrap"; apt-get install -y -qq debootstrap >/dev/null; }

OWN_WORK=0
if [ -z "${WORK:-}" ]; then
    WORK=$(mktemp -d /tmp/carfeed-base.XXXXXX)
    OWN_WORK=1
fi
mkdir -p "$WORK"
ROOT=$WORK/rootfs
MOUNTED=()
cleanup() {
    local i
    for ((i = ${#MOUNTED[@]} - 1; i >= 0; i--)); do umount -l "${MOUNTED[$i]}" 2>/dev/null || true; done
    rm -rf "$ROOT"
    if [ "$OWN_WORK" = 1 ]; then rm -rf "$WORK"; fi
}
trap cleanup EXIT

log "debootstrap --variant=minbase $SUITE (the mirror of this machine's apt sources)"
debootstrap --variant=minbase "$SUITE" "$ROOT" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
    || { tail -20 "$WORK/debootstrap.log" >&2; exit 1; }

# Inside the image apt uses the same mirror (main, updates, security).
rm -f "$ROOT/etc/apt/sources.list"
{
    printf 'Types: deb\nURIs: %s\nSuites: %s %s-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
        "$MIRROR" "$SUITE" "$SUITE"
    if [ -n "$SECURITY" ]; then
        printf '\nTypes: deb\nURIs: %s\nSuites: %s-security\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
            "$SECURITY" "$SUITE"
    fi
} >"$ROOT/etc/apt/sources.list.d/debian.sources"
printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' >"$ROOT/etc/apt/apt.conf.d/99no-recommends"
# A mirror snapshot may be older than its Release file's Valid-Until.
printf 'Acquire::Check-Valid-Until "false";\nAcquire::Check-Date "false";\n' >"$ROOT/etc/apt/apt.conf.d/99no-check-valid"

# Services must not start inside the chroot; the Postgres cluster is made at
# run time by docker/postgres-local/entrypoint.sh.
printf '#!/bin/sh\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d"
chmod +x "$ROOT/usr/sbin/policy-rc.d"
mkdir -p "$ROOT/etc/postgresql-common"
echo 'create_main_cluster = false' >"$ROOT/etc/postgresql-common/createcluster.conf"
# chroot_install PACKAGES...: apt-get install inside the chroot, with /proc,
# /sys and /dev/pts mounted and the host's resolver only while it runs.
chroot_install() {
    local i
    cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
    mount -t proc proc "$ROOT/proc" && MOUNTED+=("$ROOT/proc")
    mount -t sysfs sys "$ROOT/sys" && MOUNTED+=("$ROOT/sys")
    mount --bind /dev/pts "$ROOT/dev/pts" && MOUNTED+=("$ROOT/dev/pts")
    log "apt-get install $* (chroot)"
    chroot "$ROOT" /usr/bin/env DEBIAN_FRONTEND=noninteractive sh -c \
        "apt-get update -q && apt-get install -y -q $*" >"$WORK/apt.log" 2>&1 \
        || { tail -30 "$WORK/apt.log" >&2; exit 1; }
    chroot "$ROOT" apt-get clean
    for ((i = ${#MOUNTED[@]} - 1; i >= 0; i--)); do umount "${MOUNTED[$i]}"; done
    MOUNTED=()
    rm -rf "$ROOT"/var/lib/apt/lists/*
    : >"$ROOT/etc/resolv.conf"
    : >"$ROOT/etc/hostname"
}

# import_image TAG: the chroot as it is now, as a docker image.
import_image() {
    log "docker import $1"
    tar -C "$ROOT" --numeric-owner -c . | $DOCKER import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["bash"]' \
        - "$1" >/dev/null
    log "done: $1, $($DOCKER image inspect --format '{{.Size}}' "$1" | awk '{ printf "%.0f MB", $1 / 1e6 }')"
}

chroot_install $PACKAGES
if [ "$NEED_BASE" = 1 ]; then
    rm -f "$ROOT/usr/sbin/policy-rc.d"
    import_image "$TAG"
    printf '#!/bin/sh\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d"
    chmod +x "$ROOT/usr/sbin/policy-rc.d"
fi
if [ "$NEED_BUILD" = 1 ]; then
    chroot_install $BUILD_PACKAGES
    rm -f "$ROOT/usr/sbin/policy-rc.d"
    import_image "$BUILD_TAG"
    printf '#!/bin/sh\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d"
    chmod +x "$ROOT/usr/sbin/policy-rc.d"
fi
if [ "$NEED_BROWSER" = 1 ]; then
    chroot_install $BROWSER_PACKAGES
    rm -f "$ROOT/usr/sbin/policy-rc.d"
    import_image "$BROWSER_TAG"
fi
