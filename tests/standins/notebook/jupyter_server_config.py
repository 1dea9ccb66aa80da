# Like docker-stacks' /etc/jupyter/jupyter_server_config.py: listen on all
# interfaces of the container, on JUPYTER_PORT, and never open a browser.
import os

c = get_config()  # noqa: F821
c.ServerApp.ip = "0.0.0.0"
c.ServerApp.open_browser = False
c.ServerApp.port = int(os.environ.get("JUPYTER_PORT", "8888"))
