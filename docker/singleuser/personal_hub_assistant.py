"""The AI assistant's model, as the hub's administrator chose it (HUB_AI_MODEL).

The hub passes the model (and, for a model server of one's own, its OpenAI-compatible
URL) into every user server's environment; the image's jupyter_server_config.py calls
`configure(c, os.environ)` at each start. Jupyternaut (jupyter-ai 3) writes
`initial_language_model` into the user's ~/.local/share/jupyter/jupyter_ai/config.json
at every start, but leaves the last one there when none is set: so the model the hub
set is remembered beside that file, and taken out again once the hub no longer sets
one (a model the user chose themselves stays).

Standard library only: it runs before anything else in the server.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

MODEL_VARIABLE = "PERSONAL_HUB_AI_MODEL"
BASE_URL_VARIABLE = "PERSONAL_HUB_AI_BASE_URL"
# The OpenAI client refuses to call without a key; a model server of one's own
# (Ollama, vLLM) ignores it.
UNUSED_KEY = "unused"


def assistant_settings(environ: Mapping[str, str]) -> dict:
    """The JupyternautExtension settings that `environ` asks for ({} without a model)."""
    model = environ.get(MODEL_VARIABLE, "").strip()
    if not model:
        return {}
    settings = {"initial_language_model": model}
    base_url = environ.get(BASE_URL_VARIABLE, "").strip()
    if base_url:
        parameters = {"api_base": base_url}
        if not environ.get("OPENAI_API_KEY"):
            parameters["api_key"] = UNUSED_KEY
        settings["model_parameters"] = {model: parameters}
    return settings


def config_file(environ: Mapping[str, str]) -> Path:
    """Jupyternaut's per-user settings file (jupyter_core's data directory)."""
    from jupyter_core.paths import jupyter_data_dir

    data = environ.get("JUPYTER_DATA_DIR") or jupyter_data_dir()
    return Path(data) / "jupyter_ai" / "config.json"


def marker_of(config: Path) -> Path:
    return config.with_name("personal-hub-default-model")


def forget_the_hubs_old_model(config: Path, model: str | None) -> None:
    """Remember which model the hub set; without one now, take the one it set before out
    of the user's settings. Never fails the server's start."""
    marker = marker_of(config)
    try:
        if model:
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(model)
            return
        if not marker.exists():
            return
        previous = marker.read_text().strip()
        settings = json.loads(config.read_text()) if config.exists() else {}
        if settings.get("model_provider_id") == previous:
            settings["model_provider_id"] = None
            (settings.get("fields") or {}).pop(previous, None)
            config.write_text(json.dumps(settings, indent=4))
        marker.unlink()
    except (OSError, ValueError, AttributeError):
        pass  # a damaged file: Jupyternaut reports it when it loads


def configure(c, environ: Mapping[str, str] = os.environ) -> None:
    """Set the hub's model on `c` (a traitlets config) and tidy the user's settings."""
    settings = assistant_settings(environ)
    for name, value in settings.items():
        setattr(c.JupyternautExtension, name, value)
    forget_the_hubs_old_model(config_file(environ), settings.get("initial_language_model"))
