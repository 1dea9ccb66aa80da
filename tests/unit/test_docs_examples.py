"""Examples of output in the docs are what the program really prints."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from personal_hub.settings import SettingsError, load_settings

CONFIGURATION = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_the_documented_problem_report_is_the_real_one():
    text = CONFIGURATION.read_text()
    block = re.search(r"```text\n(personal-hub: \d+ problems in the settings:\n.*?)```",
                      re.sub(r"^  ", "", text, flags=re.M), re.S)
    assert block, "docs/configuration.md lost its example problem report"
    environ = {
        "HUB_MEM_LIMT": "2G",
        "JUPYTER_PASSWORD": "short",
        "JUPYTER_ADMIN_PASSWORD": "an-Admin-Password-For-The-Docs-1234",
        "HUB_CPU_LIMIT": "two",
        "HUB_IDLE_TIMEOUT": "soon",
    }
    with pytest.raises(SettingsError) as raised:
        load_settings(environ)
    assert block.group(1) == raised.value.report() + "\n"
