#!/bin/sh
# Build the single-user image (default personal-jupyter-singleuser:latest).
#   ./build.sh                         build with the real upstream base image
#   SINGLEUSER_IMAGE=name:tag ./build.sh
#   SINGLEUSER_BASE_IMAGE=quay.io/jupyter/datascience-notebook:2026-11-23 ./build.sh
set -eu
cd "$(dirname "$0")"
IMAGE=${SINGLEUSER_IMAGE:-${HUB_SINGLEUSER_IMAGE:-personal-jupyter-singleuser:latest}}
BASE=${SINGLEUSER_BASE_IMAGE:-quay.io/jupyter/datascience-notebook:python-3.13}
echo "==> building $IMAGE from $BASE" >&2
exec docker build --file docker/singleuser.Dockerfile --build-arg "BASE_IMAGE=$BASE" --tag "$IMAGE" .
