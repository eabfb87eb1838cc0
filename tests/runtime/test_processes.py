"""Attempts as real processes: environment, logs, exit codes, fast path parity, memory, timeouts."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from batchbook.runtime.local import LocalBatch
from tests.runtime.conftest import log_lines, run_python, setup_local

PROBE = r"""
import atexit, json, os, sys
atexit.register(lambda: print("atexit ran"))
print(json.dumps({
    "argv": sys.argv, "name": __name__, "path0": sys.path[0], "cwd_is_scratch": os.path.basename(os.getcwd()) != "",
    "job": os.environ.get("AWS_BATCH_JOB_ID", "").count(":"), "attempt": os.environ["AWS_BATCH_JOB_ATTEMPT"],
    "queue": os.environ["AWS_BATCH_JQ_NAME"], "ce": os.environ["AWS_BATCH_CE_NAME"],
    "index": os.environ.get("AWS_BATCH_JOB_ARRAY_INDEX"), "custom": os.environ.get("CUSTOM"),
    "pgid_is_pid": os.getpgid(0) == os.getpid(), "stdin": sys.stdin.read(),
    "extra_path": os.environ.get("PYTHONPATH", "").split(os.pathsep)[0] in sys.path,
}))
print("to stderr", file=sys.stderr)
sys.exit(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
"""


def fast_and_exec(
    lb: LocalBatch, code: str, *args: str, env: list[dict[str, str]] | None = None
) -> tuple[dict, dict]:
    """Run the same code through the fork server and through a real interpreter (forced by a start-up variable)."""
    env = env or []
    fast = run_python(
        lb, code, containerOverrides={"command": ["python", "-c", code, *args], "environment": env}
    )
    slow_env = [
        *env,
        {"name": "PYTHONINTMAXSTRDIGITS", "value": "4300"},
    ]  # the default value: forces exec only
    slow = run_python(
        lb,
        code,
        containerOverrides={"command": ["python", "-c", code, *args], "environment": slow_env},
    )
    return fast, slow


def test_fast_path_and_exec_path_behave_the_same(lb: LocalBatch, tmp_path: Path) -> None:
    env = [{"name": "CUSTOM", "value": "yes"}, {"name": "PYTHONPATH", "value": str(tmp_path)}]
    fast, slow = fast_and_exec(lb, PROBE, "3", env=env)
    assert fast["status"] == slow["status"] == "FAILED"
    assert (
        fast["attempts"][0]["container"]["exitCode"]
        == slow["attempts"][0]["container"]["exitCode"]
        == 3
    )
    fast_log, slow_log = log_lines(lb, fast), log_lines(lb, slow)
    assert fast_log == slow_log
    probe = json.loads(fast_log[0])
    assert probe["argv"] == ["-c", "3"]
    assert probe["name"] == "__main__"
    assert probe["path0"] == ""
    assert probe["custom"] == "yes"
    assert probe["pgid_is_pid"] is True  # its own process group
    assert probe["stdin"] == ""
    assert probe["extra_path"] is True
    assert (probe["queue"], probe["ce"], probe["attempt"]) == ("q", "ce", "1")
    assert fast_log[1:] == ["to stderr", "atexit ran"] or fast_log[1:] == [
        "atexit ran",
        "to stderr",
    ]


def test_fast_path_is_really_taken(lb: LocalBatch) -> None:
    code = "print(open('/proc/self/cmdline').read().split(chr(0))[1:3])"
    fast, slow = fast_and_exec(lb, code)
    assert log_lines(lb, fast) == [
        "['-m', 'batchbook.runtime.forkserver']"
    ]  # a fork of the warm server
    assert log_lines(lb, slow) == [
        "['-c', \"print(open('/proc/self/cmdline').read().split(chr(0))[1:3])\"]"
    ]


@pytest.mark.parametrize(
    ("code", "exit_code", "last_line"),
    [
        ("import sys; sys.exit('bad input')", 1, "bad input"),
        ("raise ValueError('boom')", 1, "ValueError: boom"),
        ("import sys; sys.exit(None)", 0, None),
        ("import os; os._exit(5)", 5, None),
        ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", 137, None),
        ("import sys; print('buffered', end=''); sys.exit(2)", 2, "buffered"),
    ],
)
def test_exit_codes_and_errors_match_a_fresh_interpreter(
    lb: LocalBatch, code: str, exit_code: int, last_line: str | None
) -> None:
    fast, slow = fast_and_exec(lb, code)
    for detail in (fast, slow):
        assert detail["attempts"][0]["container"]["exitCode"] == exit_code
        lines = log_lines(lb, detail)
        assert (lines[-1] if lines else None) == last_line
    assert log_lines(lb, fast) == log_lines(lb, slow)


def test_children_of_the_fork_server_are_reseeded_like_fresh_interpreters(lb: LocalBatch) -> None:
    """The fork server forks without os.fork's hooks: it must still reseed random and
    record the child's own thread id, as a fresh interpreter (or os.fork) would."""
    code = (
        "import random, threading; print(random.random(), random.getrandbits(64), "
        "threading.main_thread().native_id == threading.get_native_id())"
    )
    parent = run_python(lb, code, arrayProperties={"size": 4})
    assert parent["status"] == "SUCCEEDED"
    lines = [
        log_lines(lb, lb.describe_jobs(jobs=[f"{parent['jobId']}:{i}"])["jobs"][0])[0]
        for i in range(4)
    ]
    assert {line.split()[2] for line in lines} == {"True"}
    assert len({line.split()[0] for line in lines}) == 4  # four different random streams


def test_dash_c_code_is_compiled_as_a_fresh_interpreter_would(lb: LocalBatch) -> None:
    """No ``from __future__`` flags leak from the fork server's own modules."""
    code = "def f(x: int): pass\nprint(f.__annotations__)"
    fast, slow = fast_and_exec(lb, code)
    assert log_lines(lb, fast) == log_lines(lb, slow) == ["{'x': <class 'int'>}"]
    broken = "print('never')\nx = ("
    fast, slow = fast_and_exec(lb, broken)
    assert fast["attempts"][0]["container"]["exitCode"] == 1
    assert log_lines(lb, fast) == log_lines(lb, slow)
    assert log_lines(lb, fast)[-1] == "SyntaxError: '(' was never closed"
    warns = "assert (1, 'always true')\nprint('ran')"  # a SyntaxWarning, printed at compile time
    fast, slow = fast_and_exec(lb, warns)
    assert log_lines(lb, fast) == log_lines(lb, slow)
    assert "SyntaxWarning: assertion is always true" in log_lines(lb, fast)[0]


def test_python_dash_m_runs_a_module(lb: LocalBatch, tmp_path: Path) -> None:
    (tmp_path / "hello_mod.py").write_text("import sys\nprint('module', __name__, sys.argv[1:])\n")
    env = [{"name": "PYTHONPATH", "value": str(tmp_path)}]
    fast = run_python(
        lb,
        "",
        containerOverrides={"command": ["python", "-m", "hello_mod", "a", "b"], "environment": env},
    )
    assert log_lines(lb, fast) == ["module __main__ ['a', 'b']"]
    missing = run_python(lb, "", containerOverrides={"command": ["python", "-m", "no_such_mod"]})
    assert missing["attempts"][0]["container"]["exitCode"] == 1
    assert "No module named no_such_mod" in log_lines(lb, missing)[-1]


def test_array_children_see_their_index_and_logs_are_timestamped(lb: LocalBatch) -> None:
    code = "import os, sys, time; i = os.environ['AWS_BATCH_JOB_ARRAY_INDEX']; print('out', i, flush=True); time.sleep(0.05); print('err', i, file=sys.stderr)"
    parent = run_python(lb, code, arrayProperties={"size": 3})
    assert parent["status"] == "SUCCEEDED"
    for i in range(3):
        child = lb.describe_jobs(jobs=[f"{parent['jobId']}:{i}"])["jobs"][0]
        stream = child["attempts"][0]["container"]["logStreamName"]
        events = lb.log_events(stream)
        assert [m for _, m in events] == [f"out {i}", f"err {i}"]
        assert events[1][0] - events[0][0] >= 40  # each line stamped when it was written
        assert (
            child["attempts"][0]["startedAt"] <= events[0][0] <= child["attempts"][0]["stoppedAt"]
        )


def test_commands_that_are_not_python_are_execed(lb: LocalBatch) -> None:
    shell = run_python(
        lb,
        "",
        containerOverrides={"command": ["sh", "-c", "echo from sh $AWS_BATCH_JOB_ATTEMPT; exit 4"]},
    )
    assert shell["attempts"][0]["container"]["exitCode"] == 4
    assert log_lines(lb, shell) == ["from sh 1"]
    missing = run_python(lb, "", containerOverrides={"command": ["no-such-program-here"]})
    assert missing["attempts"][0]["container"]["exitCode"] == 127
    assert log_lines(lb, missing)[0].startswith("CannotStartContainerError: no-such-program-here")


def test_going_over_memory_is_an_oom_kill(lb: LocalBatch) -> None:
    code = "import time\nblocks = []\nfor _ in range(40):\n    blocks.append(bytearray(20 << 20)); time.sleep(0.02)\nprint('survived')"
    detail = run_python(
        lb, code, containerOverrides={"resourceRequirements": [{"type": "MEMORY", "value": "100"}]}
    )
    assert detail["status"] == "FAILED"
    assert detail["statusReason"] == "OutOfMemoryError: Container killed due to memory usage"
    container = detail["attempts"][0]["container"]
    assert container["exitCode"] == 137
    assert container["reason"] == "OutOfMemoryError: Container killed due to memory usage"
    assert "survived" not in log_lines(lb, detail)


def test_peak_memory_and_cpu_time_are_recorded(lb: LocalBatch) -> None:
    code = "import time\nx = bytearray(150 << 20)\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass"
    detail = run_python(lb, code)
    [usage] = lb.attempts_usage(detail["jobId"])
    assert usage["peakMemoryKiB"] > 150 * 1024
    assert usage["cpuSeconds"] >= 0.25


def test_timeout_kills_the_whole_process_group(lb: LocalBatch, tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    code = f"import subprocess, time\np = subprocess.Popen(['sleep', '60'])\nopen({str(pidfile)!r}, 'w').write(str(p.pid))\ntime.sleep(60)"
    started = time.monotonic()
    detail = run_python(
        lb, code, timeout={"attemptDurationSeconds": 1}, retryStrategy={"attempts": 3}
    )
    assert time.monotonic() - started < 10
    assert detail["status"] == "FAILED"
    assert detail["statusReason"] == "Job attempt duration exceeded timeout"
    assert len(detail["attempts"]) == 1  # a timeout is not retried
    assert detail["attempts"][0]["container"]["exitCode"] == 143  # SIGTERM
    grandchild = int(pidfile.read_text())
    assert not _alive(grandchild)


def test_sigterm_is_followed_by_sigkill(lb: LocalBatch) -> None:
    code = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('ignoring', flush=True)\ntime.sleep(60)"
    job = run_python(lb, code, wait=False)["jobId"]
    _wait_for(lambda: lb.describe_jobs(jobs=[job])["jobs"][0]["status"] == "RUNNING")
    time.sleep(0.3)
    lb.terminate_job(jobId=job, reason="Stopped by the test")
    lb.wait([job], timeout=10)
    detail = lb.describe_jobs(jobs=[job])["jobs"][0]
    assert (detail["status"], detail["statusReason"]) == ("FAILED", "Stopped by the test")
    assert detail["attempts"][0]["container"]["exitCode"] == 137
    assert detail["isTerminated"] is True


def test_cancel_leaves_a_running_job_alone(lb: LocalBatch) -> None:
    job = run_python(lb, "import time; time.sleep(0.5)", wait=False)["jobId"]
    _wait_for(lambda: lb.describe_jobs(jobs=[job])["jobs"][0]["status"] == "RUNNING")
    lb.cancel_job(jobId=job, reason="too late")
    lb.wait([job], timeout=10)
    assert lb.describe_jobs(jobs=[job])["jobs"][0]["status"] == "SUCCEEDED"


def test_capacity_is_never_exceeded_by_the_processes_that_ran(tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    code = (
        "import os, time\nstart = time.time(); time.sleep(0.25)\n"
        f"open(os.path.join({str(marks)!r}, os.environ['AWS_BATCH_JOB_ARRAY_INDEX']), 'w').write(f'{{start}} {{time.time()}}')"
    )
    with LocalBatch(tmp_path / "state") as lb:
        setup_local(lb, max_vcpus=3)
        detail = run_python(lb, code, arrayProperties={"size": 12})
        assert detail["status"] == "SUCCEEDED"
    spans = [tuple(map(float, p.read_text().split())) for p in marks.iterdir()]
    assert len(spans) == 12
    points = sorted(
        [(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans], key=lambda p: (p[0], p[1])
    )
    running = peak = 0
    for _, delta in points:
        running += delta
        peak = max(peak, running)
    assert peak == 3  # never more than maxvCpus, and it did use all three


def test_priority_decides_under_contention(tmp_path: Path) -> None:
    code = "import os, time; print(time.time()); time.sleep(0.05)"
    with LocalBatch(tmp_path / "state") as lb:
        setup_local(lb, max_vcpus=1, queue="low", priority=1)
        setup_local(lb, max_vcpus=1, queue="high", priority=100)
        lb.update_compute_environment(computeEnvironment="ce", state="DISABLED")
        lows = [
            run_python(lb, code, name=f"low{i}", queue="low", wait=False)["jobId"] for i in range(3)
        ]
        highs = [
            run_python(lb, code, name=f"high{i}", queue="high", wait=False)["jobId"]
            for i in range(3)
        ]
        lb.update_compute_environment(computeEnvironment="ce", state="ENABLED")
        lb.wait(lows + highs, timeout=30)
        started = {j["jobId"]: j["startedAt"] for j in lb.describe_jobs(jobs=lows + highs)["jobs"]}
    order = sorted(started, key=started.get)
    assert order == highs + lows


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _wait_for(predicate, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def test_env_is_not_leaked_between_attempts(lb: LocalBatch) -> None:
    first = run_python(
        lb,
        "import os; os.environ['LEAK'] = '1'; print(os.environ.get('CUSTOM'))",
        containerOverrides={"environment": [{"name": "CUSTOM", "value": "a"}]},
    )
    second = run_python(lb, "import os; print(os.environ.get('LEAK'), os.environ.get('CUSTOM'))")
    assert log_lines(lb, first) == ["a"]
    assert log_lines(lb, second) == ["None None"]
    assert os.environ.get("LEAK") is None
