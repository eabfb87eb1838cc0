"""nbval runs the notebooks here (``--nbval``: every cell must run and give the output
stored, after notebooks/sanitize.cfg; cells marked ``# NBVAL_IGNORE_OUTPUT`` only run).
Their kernels share a throw-away batchbook home, whose service is stopped at the end."""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

from batchbook.server.discovery import stop_service

HOME = tempfile.mkdtemp(prefix="batchbook-notebooks-")
os.environ["BATCHBOOK_HOME"] = HOME  # set at collection, before nbval starts a kernel


@pytest.hookimpl()
def pytest_sessionfinish() -> None:
    stop_service(os.path.join(HOME, "local"))
    shutil.rmtree(HOME, ignore_errors=True)
