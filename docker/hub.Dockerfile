# The hub image: JupyterHub + personal-hub, run from the packaged config.
# Build from the repository root:  docker build -f docker/hub.Dockerfile .
ARG PYTHON_IMAGE=python:3.12.14-slim-trixie
FROM ${PYTHON_IMAGE}

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HUB_DATA_DIR=/srv/jupyterhub

# iptables for the `egress` service (HUB_EGRESS), which runs from this image: Debian's
# package (both the nftables and the legacy backend), at the version of the base
# image's Debian release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends iptables \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /tmp/personal-hub
COPY docker/hub-constraints.txt pyproject.toml README.md ./
COPY personal_hub ./personal_hub
# Binary wheels only: no compiler in the image, nothing left behind but the install.
# Without rfc3987-syntax: jsonschema would build its ~35 "iri" format parsers at every
# hub start (1-2 s of a restart on two cores; no JupyterHub schema uses that format).
RUN pip install --only-binary=:all: --constraint hub-constraints.txt . \
    && pip uninstall --yes rfc3987-syntax \
    && pip check \
    && rm -rf /tmp/personal-hub /root/.cache \
    && mkdir -p /srv/jupyterhub

WORKDIR /srv/jupyterhub
VOLUME /srv/jupyterhub
EXPOSE 8081
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request, sys; urllib.request.urlopen('http://127.0.0.1:8081/hub/health', timeout=4)"]
# `personal-hub run` validates every setting first and prints all problems, then
# starts `jupyterhub -f <packaged config>` (which runs upgrade-db on start).
CMD ["personal-hub", "run"]
