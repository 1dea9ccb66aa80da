import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.helpers import LOG_COLLECTORS, LOG_FILES
from tests.services.servers import Postgres

LOG_TAIL_CHARS = 6000


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """When a test fails, attach the tail of every log of the processes it ran."""
    report = yield
    # Fixtures read this to save evidence (e.g. a screenshot) of a failed test.
    setattr(item, f"rep_{report.when}", report)
    if report.failed:
        for path in LOG_FILES:
            if path.exists():
                text = path.read_text(errors="replace")[-LOG_TAIL_CHARS:]
                report.sections.append((f"log {path.name} (tail)", text))
        for collect in LOG_COLLECTORS:
            try:
                sections = collect()
            except Exception as error:  # noqa: BLE001 - a broken collector must not hide the failure
                sections = [("log collector failed", repr(error))]
            for title, text in sections:
                report.sections.append((title, text[-LOG_TAIL_CHARS:]))
    return report


# A throwaway PostgreSQL server for the tiers that run a hub without Docker (services,
# security): started on first use, once per test session.
@pytest.fixture(scope="session")
def services_dir():
    base = Path(tempfile.mkdtemp(prefix="personal-hub-services-"))
    os.chmod(base, 0o755)  # the postgres user must reach its directory inside
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres(services_dir):
    server = Postgres(services_dir)
    yield server
    server.stop()

