"""A real browser (Debian's Chromium, driven by Playwright) uses the running stack.

It logs in through the proxy's login form, waits for JupyterLab, checks that the
collaboration and SQL front-end extensions are loaded, runs a cell and reads its
output. On failure a screenshot is saved under test-artifacts/.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docker.conftest import REPO
from tests.helpers import require

pytestmark = pytest.mark.docker

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
]
ARTIFACTS = REPO / "test-artifacts"
TIMEOUT_MS = 120_000


@pytest.fixture
def browser_page(tmp_path, request):
    require(Path(CHROMIUM).exists(), "Chromium is not installed (apt-get install chromium)")
    # Imported here so the rest of the tier runs without it; `require` fails in CI.
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    require(sync_playwright is not None, "Playwright is not installed (pip install playwright)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        try:
            yield page
        finally:
            report = getattr(request.node, "rep_call", None)
            if report is None or report.failed:
                ARTIFACTS.mkdir(exist_ok=True)
                page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
            context.close()
            browser.close()


def test_browser_logs_in_and_runs_a_cell_in_jupyterlab(running_stack, browser_page):
    stack = running_stack
    page = browser_page
    user = f"{stack.prefix}web"
    page.goto(f"{stack.url}/hub/login")
    page.fill("#username_input", user)
    page.fill("#password_input", stack.env_file()["JUPYTER_PASSWORD"])
    page.click("#login_submit")
    # The hub spawns the server and the browser lands in JupyterLab.
    page.wait_for_url(f"**/user/{user}/lab**", timeout=TIMEOUT_MS)
    page.wait_for_selector(".jp-LabShell", timeout=TIMEOUT_MS)
    extensions = page.evaluate(
        "JSON.parse(document.getElementById('jupyter-config-data').textContent)"
        ".federated_extensions.map(e => e.name)"
    )
    assert any("collaboration" in name for name in extensions), extensions
    assert any("jupysql" in name for name in extensions), extensions

    # A new notebook from the launcher, one cell, its output.
    page.locator(".jp-LauncherCard[data-category='Notebook']").first.click()
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell .cm-content", timeout=TIMEOUT_MS)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']",
                           timeout=TIMEOUT_MS)
    cell = page.locator(".jp-NotebookPanel .jp-Cell .cm-content").first
    cell.click()
    page.keyboard.type("print(6 * 7, 'from the browser')")
    page.keyboard.press("Shift+Enter")
    output = page.locator(".jp-OutputArea-output").first
    output.wait_for(timeout=TIMEOUT_MS)
    assert "42 from the browser" in output.inner_text()
