# Stock JupyterHub + DockerSpawner: configuration A of bench/compare.py.
#
# What a person writes from the JupyterHub docs and jupyterhub-deploy-docker for the same
# compose stack as personal-hub: DockerSpawner and SharedPasswordAuthenticator with their
# defaults (one-thread Docker executor, start_timeout 60 s, http_timeout 30 s,
# concurrent_spawn_limit 100), wired to the stack's external configurable-http-proxy and
# PostgreSQL, with the same single-user image, network and home volume. Nothing is tuned:
# every line below is wiring the stack needs, or a line the docs tell you to write.
# The values come from the hub container's environment (stack.env plus the compose
# file's `environment:`), as jupyterhub-deploy-docker's config reads them.
#
# compare.py mounts this file read-only into the hub container and starts
# `jupyterhub -f <this file>` instead of `personal-hub run`.
import os
from urllib.parse import quote

c = get_config()  # noqa: F821 - provided by JupyterHub when it loads this file

# One shared password, anyone may log in under any name (personal-hub's default too).
c.JupyterHub.authenticator_class = "shared-password"
c.SharedPasswordAuthenticator.user_password = os.environ["JUPYTER_PASSWORD"]
c.SharedPasswordAuthenticator.admin_password = os.environ["JUPYTER_ADMIN_PASSWORD"]
c.Authenticator.admin_users = {os.environ["JUPYTER_ADMIN_USER"]}
c.Authenticator.allow_all = True

# The stack's own configurable-http-proxy, as in JupyterHub's "Running proxy separately
# from the hub": the hub does not start it and does not stop servers when it stops.
c.ConfigurableHTTPProxy.should_start = False
c.ConfigurableHTTPProxy.api_url = os.environ["HUB_PROXY_API_URL"]
c.ConfigurableHTTPProxy.auth_token = os.environ["CONFIGPROXY_AUTH_TOKEN"]
c.JupyterHub.cleanup_servers = False
# The proxy's default target is http://hub:8081; containers reach the hub by that name.
c.JupyterHub.hub_ip = "0.0.0.0"
c.JupyterHub.hub_connect_ip = os.environ["HUB_CONNECT_HOST"]

# The stack's PostgreSQL (psycopg2, as the hub image ships it). The cookie secret stays
# at its default path in the working directory, the hub's data volume.
c.JupyterHub.db_url = "postgresql+psycopg2://{}:{}@{}:{}/{}".format(
    quote(os.environ["POSTGRES_USER"], safe=""),
    quote(os.environ["POSTGRES_PASSWORD"], safe=""),
    os.environ["POSTGRES_HOST"],
    os.environ["POSTGRES_PORT"],
    quote(os.environ["POSTGRES_DB"], safe=""),
)

# DockerSpawner as jupyterhub-deploy-docker sets it up: the image, the network, internal
# addresses, containers removed when they stop, one home volume per user (mounted where
# personal-hub mounts it, so both first spawns fill a new volume the same way).
c.JupyterHub.spawner_class = "dockerspawner.DockerSpawner"
c.DockerSpawner.image = os.environ["HUB_SINGLEUSER_IMAGE"]
c.DockerSpawner.network_name = os.environ["HUB_DOCKER_NETWORK"]
c.DockerSpawner.use_internal_ip = True
c.DockerSpawner.remove = True
c.DockerSpawner.volumes = {"jupyterhub-user-{username}": "/home/jovyan"}
