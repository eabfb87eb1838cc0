"""Remote tracebacks name the notebook cell or local file and show each source line as
submitted, though neither exists on the worker (and whatever cloudpickle calls the code)."""

from __future__ import annotations

import importlib
import linecache
import os
import sys
import time
from pathlib import Path

import pytest

import batchbook as batch
from batchbook.errors import RemoteError, SerializationError
from batchbook.functions.backend import Backend

CELL = """\
def helper(x):
    return 1 / x

def inverse_plus_one(x):
    return helper(x) + 1
"""


def test_a_cell_that_exists_only_here_shows_in_the_remote_traceback(backend: Backend) -> None:
    # As IPython runs a cell: compiled under a name no file has, its text put in linecache.
    name = "<cell-7>"
    linecache.cache[name] = (len(CELL), None, CELL.splitlines(True), name)
    namespace = {"__name__": "__main__"}
    try:
        exec(compile(CELL, name, "exec"), namespace)
        job = batch.map(namespace["inverse_plus_one"], [1, 0], chunksize=1)
        with pytest.raises(RemoteError) as info:
            job.results()
    finally:
        del linecache.cache[name]
    tb = info.value.traceback
    assert "<dynamic-code>" not in tb
    assert f'File "{name}", line 5, in inverse_plus_one\n    return helper(x) + 1\n' in tb
    assert f'File "{name}", line 2, in helper\n    return 1 / x\n' in tb
    assert tb.rstrip().endswith("ZeroDivisionError: division by zero")


MODULE = """\
def parse(text):
    value = int(text)  # the line the traceback must show
    return value * 2
"""


def wait_for(path: str) -> str:
    while not os.path.exists(path):  # on the worker: holds the map back until the test says
        time.sleep(0.02)
    return path


def test_a_local_module_removed_after_submission_still_shows(
    backend: Backend, tmp_path: Path
) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "parsing_helpers.py").write_text(MODULE)
    sys.path.insert(0, str(folder))
    try:
        module = importlib.import_module("parsing_helpers")
        gate = batch.map(wait_for, [str(tmp_path / "go")])
        job = batch.map(module.parse, ["4", "four"], chunksize=1, depends_on=gate)
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop("parsing_helpers", None)
    source = folder / "parsing_helpers.py"
    source.unlink()  # the worker will not find the file: only what was submitted
    (tmp_path / "go").touch()
    results = job.results(return_exceptions=True)
    assert results[0] == 8
    tb = results[1].traceback
    assert f'File "{source}", line 2, in parse\n' in tb
    assert "value = int(text)  # the line the traceback must show" in tb
    assert "ValueError: invalid literal for int()" in tb


class Holder:
    def __init__(self) -> None:
        import threading

        self.label = "fine"
        self.lock = threading.Lock()


def returns_a_lock(x: int) -> dict[str, object]:
    return {"ok": x, "holder": Holder()}


def test_an_unpicklable_result_says_which_part_and_why(backend: Backend) -> None:
    job = batch.map(returns_a_lock, [1], wait=True)
    with pytest.raises(SerializationError) as info:
        job.results()
    message = str(info.value)
    assert message.startswith("input 0: its result could not be pickled")
    assert "at ['holder'].lock: a lock" in message
    assert "cannot pickle '_thread.lock' object" in message
    assert "batchbook" not in message.split("pickled", 1)[1]  # no internals of ours
    frame = job.to_frame()
    assert frame.loc[0, "error"].startswith("SerializationError: its result could not be pickled")
    assert frame.loc[0, "traceback"] is None
