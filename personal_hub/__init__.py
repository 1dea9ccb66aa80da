"""personal-hub: a batteries-included personal JupyterHub for homelabs.

Importing this package has no side effects and needs only the standard library;
the JupyterHub classes live in `personal_hub.authenticator` and `personal_hub.spawner`.
"""

from pathlib import Path

__version__ = "0.1.0"


def config_path() -> str:
    """Path of the packaged config, for `jupyterhub -f`."""
    return str(Path(__file__).with_name("jupyterhub_config.py"))
