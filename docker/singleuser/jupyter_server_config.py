# personal-hub, at every server start:
# - the AI assistant's model, as the hub's administrator set it (HUB_AI_MODEL,
#   HUB_AI_BASE_URL), read from the environment;
# - a git name and e-mail address for the person, if they have none yet.
import personal_hub_assistant
import personal_hub_git

personal_hub_assistant.configure(get_config())  # noqa: F821 - given to config files
personal_hub_git.default_identity()
