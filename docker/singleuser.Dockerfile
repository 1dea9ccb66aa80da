# The single-user image: a docker-stacks data-science notebook plus what the hub needs.
# Build from the repository root:  ./build.sh   (or: docker compose --profile build build singleuser)
# BASE_IMAGE: python-3.13 tracks the current docker-stacks build (JupyterLab 4.x, which
# the collaboration packages need). Pin a dated tag (e.g. ...:2026-11-23) for exact rebuilds.
ARG BASE_IMAGE=quay.io/jupyter/datascience-notebook:python-3.13
FROM ${BASE_IMAGE}

COPY docker/singleuser-requirements.txt /tmp/singleuser-requirements.txt
# Installed at build time, never when a container starts; no pip cache kept.
RUN pip install --no-cache-dir --requirement /tmp/singleuser-requirements.txt

# DockerSpawner runs the image's default command (start-notebook.py), which starts
# jupyterhub-singleuser when the hub's API token is in the environment.
