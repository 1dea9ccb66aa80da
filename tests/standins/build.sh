#!/bin/sh
# Build the local stand-in images the Docker-tier tests use instead of the
# upstream images (python:3.12-slim, quay.io/jupyter/datascience-notebook,
# postgres, quay.io/jupyterhub/configurable-http-proxy, traefik), which cannot
# be pulled where there is no registry. See README.md beside this file.
#
# Usage: sh tests/standins/build.sh [> standins.env]
# Progress goes to stderr; stdout gets only NAME=tag lines (an env file).
# Idempotent: an image whose build context (and parent image) is unchanged is
# not rebuilt, so a rerun takes seconds.
#
# Environment:
#   DEBIAN_MIRROR       Debian mirror for debootstrap (default: debootstrap's own)
#   STANDIN_CA_BUNDLE   CA bundle copied into the images for pip/npm
#                       (default /etc/ssl/certs/ca-certificates.crt)
#   STANDIN_REBUILD=1   rebuild every image (the imported Debian rootfs too)
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
MIRROR=${DEBIAN_MIRROR:-}
HOST_CA=${STANDIN_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
REBUILD=${STANDIN_REBUILD:-0}
HASH_LABEL=personal-hub.standin.hash

DEBIAN_TAG=personal-hub-standin/debian:bookworm
BASE_TAG=personal-hub-standin/base:bookworm
PYTHON_TAG=personal-hub-standin/python:3.12-slim
NOTEBOOK_TAG=personal-hub-standin/datascience-notebook:latest
POSTGRES_TAG=personal-hub-standin/postgres:16
CHP_TAG=personal-hub-standin/configurable-http-proxy:5
TRAEFIK_TAG=personal-hub-standin/traefik:v3
# Helper holding the Traefik binary; keep its version in step with
# TRAEFIK_BIN_VERSION in traefik-bin/Dockerfile and COPY --from in traefik/Dockerfile.
TRAEFIK_BIN_TAG=personal-hub-standin/traefik-bin:3.7.15

log() { printf 'standins: %s\n' "$*" >&2; }
run() { log "+ $*"; "$@"; }
die() { log "error: $*"; exit 1; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/personal-hub-standins.XXXXXX")
cleanup() {
    # debootstrap mounts proc/sys inside the rootfs; never rm through a mount.
    for m in proc sys dev/pts dev; do
        umount "$TMP/rootfs/$m" 2>/dev/null || true
    done
    rm -rf --one-file-system "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

command -v docker >/dev/null 2>&1 || die "docker CLI not found"
docker info >/dev/null 2>&1 || die "cannot reach the Docker engine (docker info failed)"
[ -r "$HOST_CA" ] || die "CA bundle $HOST_CA not readable (set STANDIN_CA_BUNDLE)"

image_id() { docker image inspect -f '{{.Id}}' "$1" 2>/dev/null || true; }

# sha256 over the context's file names and contents, plus any extra strings
# (the IDs of the parent images, so a rebuilt parent rebuilds its children).
context_hash() {
    ctx=$1
    shift
    {
        (cd "$ctx" && find . -type f | LC_ALL=C sort | while IFS= read -r f; do
            printf '%s %s\n' "$(sha256sum <"$f" | cut -d' ' -f1)" "$f"
        done)
        for extra in "$@"; do printf 'parent %s\n' "$extra"; done
    } | sha256sum | cut -d' ' -f1
}

# build TAG CONTEXT [PARENT_TAG...]
build() {
    tag=$1
    ctx=$2
    shift 2
    parents=""
    for p in "$@"; do
        pid=$(image_id "$p")
        [ -n "$pid" ] || die "parent image $p of $tag is missing"
        parents="$parents $pid"
    done
    # shellcheck disable=SC2086 # word splitting of the ID list is intended
    hash=$(context_hash "$ctx" $parents)
    old_id=$(image_id "$tag")
    if [ -n "$old_id" ] && [ "$REBUILD" != 1 ]; then
        have=$(docker image inspect -f "{{ index .Config.Labels \"$HASH_LABEL\" }}" "$tag" 2>/dev/null || true)
        if [ "$have" = "$hash" ]; then
            log "$tag is up to date (hash ${hash%"${hash#????????????}"})"
            return 0
        fi
    fi
    start=$(date +%s)
    run docker build --label "$HASH_LABEL=$hash" -t "$tag" "$ctx" >&2 ||
        die "docker build of $tag failed"
    log "built $tag in $(($(date +%s) - start)) s"
    # Drop the image this build replaced if it is ours and now untagged.
    if [ -n "$old_id" ] && [ "$old_id" != "$(image_id "$tag")" ]; then
        if [ "$(docker image inspect -f '{{len .RepoTags}}' "$old_id" 2>/dev/null || echo 1)" = 0 ]; then
            docker image rm "$old_id" >/dev/null 2>&1 || true
        fi
    fi
}

# --- 1. Debian bookworm root filesystem, imported as an image ----------------
if [ -n "$(image_id "$DEBIAN_TAG")" ] && [ "$REBUILD" != 1 ]; then
    log "$DEBIAN_TAG exists, not rebuilding the rootfs"
else
    if ! command -v debootstrap >/dev/null 2>&1; then
        run apt-get update >&2
        run env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends debootstrap >&2
    fi
    start=$(date +%s)
    rootfs=$TMP/rootfs
    # shellcheck disable=SC2086 # no mirror argument: debootstrap's default
    run debootstrap --variant=minbase bookworm "$rootfs" $MIRROR >&2
    for m in proc sys dev/pts dev; do umount "$rootfs/$m" 2>/dev/null || true; done
    # The mirror debootstrap used, for updates and security fixes too.
    MIRROR=$(awk '$1 == "deb" { print $2; exit }' "$rootfs/etc/apt/sources.list")
    cat >"$rootfs/etc/apt/sources.list" <<EOF
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb ${MIRROR%/debian}/debian-security bookworm-security main
EOF
    # Like the official debian images: no package cache, no stale indexes.
    cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/tmp/*
    log "+ tar -C $rootfs -c . | docker import - $DEBIAN_TAG"
    tar -C "$rootfs" --numeric-owner -c . | docker import \
        -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        -c 'ENV LANG=C.UTF-8' \
        -c 'CMD ["bash"]' \
        -m "debootstrap --variant=minbase bookworm" - "$DEBIAN_TAG" >&2
    rm -rf --one-file-system "$rootfs"
    log "imported $DEBIAN_TAG in $(($(date +%s) - start)) s"
fi

# --- 2. Shared base: CA bundle + tzdata, inherited by every stand-in ---------
# The CA file is copied into a temporary context; it is never committed.
mkdir -p "$TMP/base"
cp "$HERE/base/Dockerfile" "$TMP/base/Dockerfile"
cp "$HOST_CA" "$TMP/base/ca-certificates.crt"
build "$BASE_TAG" "$TMP/base" "$DEBIAN_TAG"

# --- 3. The stand-ins, in two parallel lanes (one per core of a CI machine) --
# Each lane logs to a file; the logs are summarised when the lanes are done.
pids=""
lane() {
    name=$1
    shift
    log "started lane $name: $* (log: $TMP/$name.log)"
    ("$@") >"$TMP/$name.log" 2>&1 &
    pids="$pids $!:$name"
}
lane_a() {
    build "$NOTEBOOK_TAG" "$HERE/notebook" "$BASE_TAG"
    build "$POSTGRES_TAG" "$HERE/postgres" "$BASE_TAG"
}
lane_b() {
    build "$PYTHON_TAG" "$HERE/python" "$BASE_TAG"
    build "$TRAEFIK_BIN_TAG" "$HERE/traefik-bin" "$PYTHON_TAG"
    build "$CHP_TAG" "$HERE/chp" "$BASE_TAG"
}
lane a lane_a
lane b lane_b
failed=""
for entry in $pids; do
    pid=${entry%%:*}
    name=${entry#*:}
    if wait "$pid"; then
        grep '^standins: ' "$TMP/$name.log" >&2 || true
    else
        failed="$failed $name"
        log "FAILED: $name; its log:"
        cat "$TMP/$name.log" >&2
    fi
done
[ -z "$failed" ] || die "failed to build:$failed"
build "$TRAEFIK_TAG" "$HERE/traefik" "$BASE_TAG" "$TRAEFIK_BIN_TAG"

log "done; image references for an env file:"
cat <<EOF
PYTHON_IMAGE=$PYTHON_TAG
SINGLEUSER_BASE_IMAGE=$NOTEBOOK_TAG
POSTGRES_IMAGE=$POSTGRES_TAG
CHP_IMAGE=$CHP_TAG
TRAEFIK_IMAGE=$TRAEFIK_TAG
EOF
