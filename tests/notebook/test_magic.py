"""``%%batch`` and ``%batch`` in a real IPython kernel, on a real local service."""

from __future__ import annotations

import math
from typing import Any

import batchbook as batch
from batchbook.functions.backend import Backend
from tests.notebook.conftest import Kernel


def test_a_cell_takes_what_it_reads_and_brings_back_what_it_assigns(kernel: Kernel) -> None:
    kernel.ok("data = list(range(10))\noffset = 5\nunused = 'x' * 5000")
    out = kernel.ok("%%batch\nimport math\ntotal = sum(data) + offset\nroot = math.sqrt(total)")
    listing = out.stdout.splitlines()[0]
    assert listing.startswith("[batch] sending data (") and "offset (" in listing
    assert "unused" not in listing  # never read: never sent
    assert "bringing back total, root;" in listing
    assert "changes made in place to what is sent are not brought back" in listing
    assert "imports (math) stay on the worker" in listing
    assert kernel.value("[total, root, 'math' in dir()]") == [50, math.sqrt(50), False]


def test_running_a_cell_again_does_not_pay_twice(kernel: Kernel) -> None:
    kernel.ok("seed = 11")
    cell = "%%batch --quiet\nimport random\ndraw = random.Random(seed).random()"
    first = kernel.ok(cell)
    assert "[batch] reused" not in first.stdout
    drawn = kernel.value("draw")
    kernel.ok("draw = None")
    again = kernel.ok(cell)  # the same cell, the same values: the run it made is given back
    assert "[batch] reused cell-" in again.stdout and "--no-reuse submits it again" in again.stdout
    assert kernel.value("draw") == drawn
    kernel.ok("seed = 12")
    changed = kernel.ok(cell)  # a value it reads changed: a new run
    assert "[batch] reused" not in changed.stdout and kernel.value("draw") != drawn
    forced = kernel.ok(cell.replace("--quiet", "--quiet --no-reuse"))
    assert "[batch] reused" not in forced.stdout


def test_an_unpicklable_assignment_stays_behind_and_the_others_come_back(kernel: Kernel) -> None:
    out = kernel.ok("%%batch --quiet\nimport threading\nlock = threading.Lock()\nvalue = 3")
    assert "[batch] not brought back, as they cannot be pickled: lock (lock:" in out.stdout
    assert kernel.value("[value, 'lock' in dir()]") == [3, False]


def test_ipythons_own_names_are_not_sent(kernel: Kernel, tmp_path: Any) -> None:
    (tmp_path / "f.txt").write_text("abc")
    kernel.ok(f"path = {str(tmp_path / 'f.txt')!r}")
    out = kernel.ok("%%batch\nwith open(path) as f:\n    n = len(f.read())")
    assert "sending path (" in out.stdout and "open (" not in out.stdout
    assert kernel.value("n") == 3


def test_sizes_are_the_pickled_sizes(kernel: Kernel) -> None:
    kernel.ok("blob = b'y' * 300_000")
    out = kernel.ok("%%batch\nsize = len(blob)")
    assert "sending blob (293.0 KiB)" in out.stdout
    assert kernel.value("size") == 300_000


def test_an_array_brings_back_a_list_per_name_in_index_order(kernel: Kernel) -> None:
    kernel.ok("%%batch --array 4\nsq = BATCH_INDEX ** 2")
    assert kernel.value("sq") == [0, 1, 4, 9]
    kernel.ok("words = ['a', 'bb', 'ccc']")
    out = kernel.ok("%%batch --over words\nn = len(BATCH_ITEM)\nup = BATCH_ITEM.upper()")
    assert "sending nothing; bringing back n, up (a list each, in BATCH_INDEX order)" in out.stdout
    assert kernel.value("[n, up]") == [[1, 2, 3], ["A", "BB", "CCC"]]


def test_an_unpicklable_capture_is_refused_by_name_and_nothing_is_submitted(
    kernel: Kernel, backend: Backend
) -> None:
    kernel.ok("import threading\nguard = threading.Lock()")
    before = len(batch.jobs())
    out = kernel.run("%%batch\nwith guard:\n    x = 1")
    assert out.error is not None and out.error["ename"] == "SerializationError"
    assert "the cell reads guard from the notebook, and it cannot be sent" in out.error["evalue"]
    assert "lock" in out.error["evalue"]
    assert len(batch.jobs()) == before


def test_what_the_cell_prints_streams_in_even_when_it_ends_at_once(kernel: Kernel) -> None:
    out = kernel.ok(
        "%%batch --quiet\nimport sys\nfor i in range(3):\n    print('line', i)\n"
        "print('to stderr', file=sys.stderr)"
    )
    assert out.stdout == "line 0\nline 1\nline 2\nto stderr\n"


def test_a_raising_cell_shows_the_remote_traceback_with_the_cells_lines(kernel: Kernel) -> None:
    out = kernel.run("%%batch --quiet\ny = 1\nraise ValueError('bad value')")
    assert out.error is not None
    text = out.traceback
    assert 'File "Cell In[' in text and "line 3, in <module>" in text
    assert "raise ValueError('bad value')" in text and "ValueError: bad value" in text
    assert "run_cell" not in text and "worker.py" not in text


def test_an_array_with_a_failing_child_keeps_the_others_and_shows_its_output(
    kernel: Kernel,
) -> None:
    out = kernel.run(
        "%%batch --quiet --array 3\nif BATCH_INDEX == 1:\n    print('child one fails')\n"
        "    raise RuntimeError('one')\nv = BATCH_INDEX * 10"
    )
    assert out.error is not None and "RuntimeError: one" in out.traceback
    assert "[batch] child 1 failed" in out.stdout and "[1] child one fails" in out.stdout
    assert "1 child of 3 failed; their entries are None" in out.stderr
    assert kernel.value("v") == [0, None, 20]


def test_ctrl_c_terminates_the_running_job(kernel: Kernel, backend: Backend) -> None:
    msg = kernel.start(
        "%%batch --quiet --name held\nimport time\nprint('started', flush=True)\ntime.sleep(600)"
    )
    kernel.collect(msg, until=lambda o: "started" in o.stdout)
    kernel.km.interrupt_kernel()
    out = kernel.collect(msg)
    assert out.error is not None and out.error["ename"] == "KeyboardInterrupt"
    assert "[batch] interrupted: terminated 1 unfinished child of held" in out.stderr
    job = batch.attach("held").wait(timeout=60)
    row = job.to_frame().iloc[0]
    assert row["status"] == "FAILED" and "Interrupted in the notebook" in row["error"]


def test_no_wait_returns_at_once_and_wait_brings_the_names_back(kernel: Kernel) -> None:
    out = kernel.ok("%%batch --quiet --no-wait --out pending --name later\nz = 6 * 7")
    assert "runs on; `%batch wait pending` brings its names back" in out.stdout
    assert out.result is not None and "MapJob later" in out.result["text/plain"]
    assert kernel.value("'z' in dir()") is False
    kernel.ok("%batch wait pending")
    assert kernel.value("z") == 42


def test_depends_on_starts_after_the_named_job(kernel: Kernel, backend: Backend) -> None:
    kernel.ok("%%batch --quiet --no-wait --name upstream\na = 1")
    kernel.ok("%%batch --quiet --depends-on upstream --name downstream\nb = 2")
    (detail,) = backend.describe([batch.attach("downstream").job_id])
    assert [d["jobId"] for d in detail["dependsOn"]] == [batch.attach("upstream").job_id]
    assert kernel.value("b") == 2


def test_the_commands(kernel: Kernel, backend: Backend) -> None:
    out = kernel.ok("%%batch --quiet --name talker --stream none\nprint('hello from talker')")
    assert "hello from talker" not in out.stdout
    assert kernel.ok("%batch logs talker").stdout == "hello from talker\n"
    assert kernel.ok("%batch logs talker --tail 0").stdout == "[batch] no output\n"
    jobs = kernel.ok("%batch jobs")
    assert jobs.result is not None and "talker" in jobs.result["text/plain"]
    assert "talker: cancelled" in kernel.ok("%batch cancel talker").stdout
    state = backend.service.state_dir
    assert (
        "[batch] using <batchbook local backend"
        in kernel.ok(f"%batch use local --state-dir {state}").stdout
    )
    aws = kernel.run("%batch use aws")
    assert aws.error is not None and "batchbook aws setup" in aws.error["evalue"]  # none made
    for line, says in [
        ("%batch nope", "'nope' is not a command; the commands are jobs, logs, cancel"),
        ("%batch", "a command is needed"),
        ("%batch logs 'unclosed", "No closing quotation"),
        ("%batch logs", "%batch logs: the following arguments are required: job"),
        ("%%batch --array 2 --over words\nx = 1", "--array and --over cannot be combined"),
        ("%%batch --array 0\nx = 1", "--array: 0 children; give 1 or more"),
        ("%%batch --over missing\nx = 1", "the notebook has no variable 'missing'"),
        ("%%batch --stream 7\nx = 1", "--stream: child 7 does not exist"),
    ]:
        bad = kernel.run(line)  # IPython shows a UsageError as one line, without a traceback
        assert bad.stderr.startswith("UsageError: "), (line, bad)
        assert says in bad.stderr, (line, bad.stderr)


def test_help_documents_each_option(kernel: Kernel) -> None:
    doc = kernel.value("get_ipython().find_cell_magic('batch').__doc__")
    for option in (
        "--name", "--queue", "--vcpus", "--memory", "--gpus", "--array", "--over",
        "--depends-on", "--retries", "--timeout", "--no-wait", "--detach", "--out", "--stream",
        "--no-reuse",
    ):  # fmt: skip
        assert option in doc, option
    assert "%batch logs JOB" in doc
