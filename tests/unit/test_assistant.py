"""The single-user image's AI assistant settings (docker/singleuser/personal_hub_assistant.py):
the hub's model reaches Jupyternaut, and leaves the user's settings when the hub drops it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from traitlets.config import Config

from personal_hub.spawner import AI_BASE_URL_VARIABLE, AI_MODEL_VARIABLE
from tests.helpers import image_module


@pytest.fixture(scope="module")
def assistant():
    return image_module("personal_hub_assistant")


def test_the_image_reads_the_variables_the_spawner_sets(assistant):
    assert (assistant.MODEL_VARIABLE, assistant.BASE_URL_VARIABLE) == (
        AI_MODEL_VARIABLE, AI_BASE_URL_VARIABLE)


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, {}),
        ({AI_MODEL_VARIABLE: "  "}, {}),
        ({AI_MODEL_VARIABLE: "openai/gpt-5.4-mini"},
         {"initial_language_model": "openai/gpt-5.4-mini"}),
        # A model server of one's own, no key: the OpenAI client still needs one to call.
        ({AI_MODEL_VARIABLE: "openai/llama3.2", AI_BASE_URL_VARIABLE: "http://ollama:11434/v1"},
         {"initial_language_model": "openai/llama3.2",
          "model_parameters": {"openai/llama3.2": {"api_base": "http://ollama:11434/v1",
                                                   "api_key": "unused"}}}),
        ({AI_MODEL_VARIABLE: "openai/qwen3", AI_BASE_URL_VARIABLE: "http://vllm:8000/v1",
          "OPENAI_API_KEY": "sk-for-the-proxy"},
         {"initial_language_model": "openai/qwen3",
          "model_parameters": {"openai/qwen3": {"api_base": "http://vllm:8000/v1"}}}),
        ({AI_BASE_URL_VARIABLE: "http://vllm:8000/v1"}, {}),
    ],
)
def test_settings_from_the_environment(assistant, environ, expected):
    assert assistant.assistant_settings(environ) == expected


def start(assistant, data_dir: Path, **environ) -> Config:
    """What one server start does with `environ`: the config, and the user's file tidied."""
    c = Config()
    assistant.configure(c, {"JUPYTER_DATA_DIR": str(data_dir), **environ})
    return c


def jupyternaut_writes(config: Path, c: Config) -> None:
    """What Jupyternaut does at start with the configured model (always overwrites)."""
    settings = json.loads(config.read_text()) if config.exists() else {}
    model = c.JupyternautExtension.get("initial_language_model")
    if model:
        settings["model_provider_id"] = model
        settings.setdefault("fields", {}).update(c.JupyternautExtension.get(
            "model_parameters", {}))
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(json.dumps(settings))


def test_the_hubs_model_leaves_with_the_hub_setting(assistant, tmp_path):
    config = tmp_path / "jupyter_ai" / "config.json"
    hub = {AI_MODEL_VARIABLE: "openai/llama3.2", AI_BASE_URL_VARIABLE: "http://ollama/v1"}
    jupyternaut_writes(config, start(assistant, tmp_path, **hub))
    assert json.loads(config.read_text())["model_provider_id"] == "openai/llama3.2"

    # The administrator removes HUB_AI_MODEL: at the next start the user has no model
    # (and "No chat model is configured" tells them to pick one), not the old one.
    c = start(assistant, tmp_path)
    assert "initial_language_model" not in c.JupyternautExtension
    settings = json.loads(config.read_text())
    assert settings["model_provider_id"] is None
    assert "openai/llama3.2" not in settings["fields"]


def test_a_model_the_user_chose_stays(assistant, tmp_path):
    config = tmp_path / "jupyter_ai" / "config.json"
    jupyternaut_writes(config, start(assistant, tmp_path, **{AI_MODEL_VARIABLE: "openai/a"}))
    settings = json.loads(config.read_text())
    config.write_text(json.dumps({**settings, "model_provider_id": "anthropic/mine"}))

    start(assistant, tmp_path)
    assert json.loads(config.read_text())["model_provider_id"] == "anthropic/mine"


def test_a_damaged_settings_file_never_stops_the_server(assistant, tmp_path):
    config = tmp_path / "jupyter_ai" / "config.json"
    start(assistant, tmp_path, **{AI_MODEL_VARIABLE: "openai/a"})
    config.write_text("{not json")

    start(assistant, tmp_path)  # no exception
    assert config.read_text() == "{not json"
