import pytest

from tests.helpers import LOG_FILES

LOG_TAIL_CHARS = 6000


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """When a test fails, attach the tail of every log of the processes it ran."""
    report = yield
    if report.failed:
        for path in LOG_FILES:
            if path.exists():
                text = path.read_text(errors="replace")[-LOG_TAIL_CHARS:]
                report.sections.append((f"log {path.name} (tail)", text))
    return report
