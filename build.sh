#!/bin/sh
# Build personal-hub's images from this checkout (the same as `./hub build`).
#   ./build.sh          the single-user image (HUB_SINGLEUSER_IMAGE)
#   ./build.sh hub      the hub image (HUB_IMAGE)
#   ./build.sh all      both
# Names and bases come from the environment, else stack.env, else the defaults (the same
# names as in stack.env): HUB_SINGLEUSER_IMAGE (or SINGLEUSER_IMAGE), SINGLEUSER_BASE_IMAGE,
# HUB_IMAGE, PYTHON_IMAGE. Defaults and details: ./build.sh --help
set -eu
exec "$(dirname "$0")/hub" build "$@"
