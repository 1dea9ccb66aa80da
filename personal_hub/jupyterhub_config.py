# The packaged JupyterHub configuration of personal-hub: `jupyterhub -f <this file>`.
# Settings come from the environment (stack.env); overrides from HUB_CONFIG_D/*.py.
from personal_hub.config import apply, load_overrides, load_settings_or_exit

c = get_config()  # noqa: F821 - provided by JupyterHub when it loads this file
settings = load_settings_or_exit()
apply(settings, c)
load_overrides(settings.config_d, load_subconfig)  # noqa: F821 - provided by JupyterHub
