"""`personal-hub init` and `check` run on a Docker host that has nothing but python3."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PROBE = """
import json, sys
sys.path.insert(0, sys.argv[1])
import personal_hub.cli, personal_hub.settings, personal_hub.variables
print(json.dumps(sorted({name.split('.')[0] for name in sys.modules}
                        - set(sys.stdlib_module_names) - {'__main__', 'personal_hub'})))
"""


def test_the_settings_and_the_cli_import_only_the_standard_library():
    # -S: no site-packages at all, as on a bare host.
    result = subprocess.run(
        [sys.executable, "-S", "-c", PROBE, str(REPO)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


def test_check_runs_without_site_packages(tmp_path):
    env_file = tmp_path / "stack.env"
    assert subprocess.run(
        [sys.executable, "-S", "-m", "personal_hub", "init", "--env-file", str(env_file)],
        cwd=REPO, capture_output=True, text=True,
    ).returncode == 0
    checked = subprocess.run(
        [sys.executable, "-S", "-m", "personal_hub", "check", "--env-file", str(env_file)],
        cwd=REPO, capture_output=True, text=True,
    )
    assert checked.returncode == 0, checked.stderr
    assert "Settings are valid" in checked.stdout
