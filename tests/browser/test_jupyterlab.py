"""The notebooks in a real JupyterLab 4, driven in Debian's headless Chromium by Playwright.

A JupyterLab server on 127.0.0.1 serves a copy of ``notebooks/`` (its kernels on a
throw-away batchbook home); each test runs a notebook top to bottom through the Run menu
and reads the rendered page: the live view's final counts, its table's pages, the plotly
timeline, a ``%%batch`` cell's streamed output, and a Cancel button that stops a running
job. Screenshots go to ``artifacts/browser/`` (or ``$BATCHBOOK_ARTIFACTS/browser``).

Without /usr/bin/chromium (``apt-get install chromium``) the tests are skipped, unless
``BATCHBOOK_BROWSER=required`` (as in CI), where that is a failure.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
TOKEN = "batchbook-browser-test"
ARTIFACTS = Path(os.environ.get("BATCHBOOK_ARTIFACTS", ROOT / "artifacts")) / "browser"
RUNS = 120_000  # ms a notebook may take to run in the browser

if not Path(CHROMIUM).exists():
    if os.environ.get("BATCHBOOK_BROWSER") == "required":
        raise RuntimeError(f"{CHROMIUM} is missing: apt-get install chromium")
    pytest.skip(
        "Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True
    )

playwright = pytest.importorskip("playwright.sync_api")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A JupyterLab server over a copy of the notebooks: (its URL, its folder)."""
    work = tmp_path_factory.mktemp("lab")
    folder = work / "notebooks"
    folder.mkdir()
    for source in (ROOT / "notebooks").glob("*.ipynb"):  # as a newcomer opens them: not run
        book = json.loads(source.read_text())
        for cell in book["cells"]:
            if cell["cell_type"] == "code":
                cell["outputs"], cell["execution_count"] = [], None
        (folder / source.name).write_text(json.dumps(book))
    for plugin, values in [  # no "news" prompt over the page; every cell in the page
        ("apputils-extension/notification", {"fetchNews": "false"}),
        ("notebook-extension/tracker", {"windowingMode": "none", "autoStartDefaultKernel": True}),
    ]:
        settings = work / "settings" / "@jupyterlab" / f"{plugin}.jupyterlab-settings"
        settings.parent.mkdir(parents=True, exist_ok=True)
        settings.write_text(json.dumps(values))
    port = free_port()
    env = {
        **os.environ,
        "BATCHBOOK_HOME": str(work / "home"),
        "JUPYTERLAB_SETTINGS_DIR": str(work / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(work / "workspaces"),
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
         "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
         f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={folder}"],
        env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert server.stderr is not None
    for line in server.stderr:  # until it says it serves (its log is on stderr)
        if "is running at" in line:
            break
    else:
        raise RuntimeError("JupyterLab ended before it served")
    drain = subprocess.Popen(["cat"], stdin=server.stderr, stdout=subprocess.DEVNULL)
    yield f"http://127.0.0.1:{port}", folder
    server.terminate()
    server.wait(30)
    drain.wait(30)
    from batchbook.server.discovery import stop_service

    stop_service(work / "home" / "local")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-background-networking", "--disable-gpu",
                  "--disable-component-update", "--disable-sync"],
        )  # fmt: skip
        yield chromium
        chromium.close()


# the notebook's code cells' prompts
PROMPTS = "const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')];"
STARTED = f"() => {{ {PROMPTS} return prompts.some(p => /\\[(\\*|\\d+)\\]/.test(p.textContent)); }}"
DONE = f"() => {{ {PROMPTS} return prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent)); }}"


def run_notebook(browser: Any, lab: tuple[str, Path], name: str) -> Any:
    """Open ``name`` in JupyterLab, run all its cells, and return its panel once all ran."""
    url, _ = lab
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    # a workspace of its own, reset: the notebook is the page's only tab
    page.goto(f"{url}/lab/workspaces/{Path(name).stem}/tree/{name}?token={TOKEN}&reset")
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=60_000)
    page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=60_000)
    for _ in range(3):  # a Run All sent while the kernel still connects runs nothing: again
        page.click("li.lm-MenuBar-item:has-text('Run')")
        page.click("li.lm-Menu-item:has-text('Run All Cells')")
        try:
            page.wait_for_function(STARTED, timeout=10_000)
            break
        except playwright.TimeoutError:
            continue
    try:
        page.wait_for_function(DONE, timeout=RUNS)  # every code cell of the notebook has run
    except playwright.TimeoutError:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"failed-{name}.png"))
        raise
    return page.locator(".jp-NotebookPanel")


def shot(name: str, locator: Any) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    locator.scroll_into_view_if_needed()
    locator.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def test_the_quickstarts_live_view_reaches_its_final_counts(browser: Any, lab: Any) -> None:
    page = run_notebook(browser, lab, "quickstart.ipynb")
    live = page.locator(".widget-html-content", has_text="estimate_pi").first
    live.wait_for(timeout=60_000)
    playwright.expect(live).to_contain_text("finished: 4/4 finished", timeout=60_000)
    assert live.locator("tbody tr").count() == 4
    shot("quickstart-view", page.locator(".widget-vbox").first)
    page.page.close()


def test_the_monitoring_view_pages_its_table_and_draws_the_timeline(browser: Any, lab: Any) -> None:
    page = run_notebook(browser, lab, "monitoring.ipynb")
    view = page.locator(".widget-vbox", has=page.page.locator(".js-plotly-plot")).first
    view.wait_for(timeout=60_000)
    live = view.locator(".widget-html-content", has_text="MapJob sensors").first
    playwright.expect(live).to_contain_text("page 1 of 3 · 120 all", timeout=60_000)
    assert live.locator("tbody tr").count() == 50
    view.locator("button", has_text="page ▶").click()
    playwright.expect(live).to_contain_text("page 2 of 3", timeout=30_000)
    assert live.locator("tbody tr").first.locator("td").first.inner_text() == "50"
    assert view.locator(".js-plotly-plot .main-svg").count() >= 2  # timeline and durations
    assert view.locator(".js-plotly-plot .bars path, .js-plotly-plot .point path").count() > 0
    shot("monitoring-view", view.locator(".widget-html-content").first)
    shot("monitoring-plots", view.locator(".js-plotly-plot").first)
    board = page.locator(".widget-html-content", has_text="Compute environments").first
    playwright.expect(board).to_contain_text("vCPUs in use", timeout=30_000)
    shot("dashboard", board)
    page.page.close()


def test_a_batch_cells_output_streams_into_the_page(browser: Any, lab: Any) -> None:
    page = run_notebook(browser, lab, "magic.ipynb")
    outputs = page.locator(".jp-OutputArea-output")
    playwright.expect(outputs.filter(has_text="total is 40.0").first).to_be_visible()
    playwright.expect(outputs.filter(has_text="[0] 0 ALPHA").first).to_be_visible()
    error = outputs.filter(has_text="ZeroDivisionError").first
    playwright.expect(error).to_contain_text("ratio = 1 / 0")
    shot("magic-stream", outputs.filter(has_text="total is 40.0").first)
    page.page.close()


def test_the_cancel_button_stops_a_running_job(browser: Any, lab: Any) -> None:
    _, folder = lab
    cell = (
        "import time\nimport batchbook as batch\n"
        "slow = batch.map(time.sleep, [600] * 4, chunksize=1, name='to-cancel')\nslow"
    )
    book = {
        "cells": [{"cell_type": "code", "execution_count": None, "id": "c1", "metadata": {},
                   "outputs": [], "source": cell}],
        "metadata": {"kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python",
                                    "name": "python3"}},
        "nbformat": 4, "nbformat_minor": 5,
    }  # fmt: skip
    (folder / "cancel.ipynb").write_text(json.dumps(book))
    page = run_notebook(browser, lab, "cancel.ipynb")
    view = page.locator(".widget-vbox", has_text="MapJob to-cancel").first
    live = view.locator(".widget-html-content", has_text="MapJob to-cancel").first
    playwright.expect(live).to_contain_text("running 2", timeout=60_000)
    view.locator("button", has_text="Cancel all").click()
    playwright.expect(live).to_contain_text("finished: 4/4 finished, 4 failed", timeout=60_000)
    playwright.expect(live).to_contain_text("Cancelled in the job view")
    shot("cancelled", view)
    page.page.close()
