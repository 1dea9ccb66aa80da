#!/bin/sh
# Build personal-hub's images from this checkout.
#   ./build.sh          the single-user image (default personal-jupyter-singleuser:latest)
#   ./build.sh hub      the hub image (default personal-hub:latest)
#   ./build.sh all      both
# Names and bases come from the environment (the same names as in stack.env):
#   HUB_SINGLEUSER_IMAGE (or SINGLEUSER_IMAGE), SINGLEUSER_BASE_IMAGE, HUB_IMAGE, PYTHON_IMAGE
set -eu
cd "$(dirname "$0")"

build_singleuser() {
    image=${SINGLEUSER_IMAGE:-${HUB_SINGLEUSER_IMAGE:-personal-jupyter-singleuser:latest}}
    base=${SINGLEUSER_BASE_IMAGE:-quay.io/jupyter/datascience-notebook:2026-08-24}
    echo "==> building $image from $base" >&2
    docker build --file docker/singleuser.Dockerfile --build-arg "BASE_IMAGE=$base" --tag "$image" .
}

build_hub() {
    image=${HUB_IMAGE:-personal-hub:latest}
    base=${PYTHON_IMAGE:-python:3.12.14-slim-trixie}
    echo "==> building $image from $base" >&2
    docker build --file docker/hub.Dockerfile --build-arg "PYTHON_IMAGE=$base" --tag "$image" .
}

case "${1:-singleuser}" in
    singleuser) build_singleuser ;;
    hub) build_hub ;;
    all) build_singleuser; build_hub ;;
    *) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
