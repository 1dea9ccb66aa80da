# personal-hub: the AI assistant's model, as the hub's administrator set it
# (HUB_AI_MODEL, HUB_AI_BASE_URL), read from the environment at every server start.
import personal_hub_assistant

personal_hub_assistant.configure(get_config())  # noqa: F821 - given to config files
