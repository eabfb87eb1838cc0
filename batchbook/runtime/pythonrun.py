"""Running ``python -c`` / ``python -m`` in a freshly forked interpreter exactly as a fresh
one would: argv, path, main module, exit codes, threads, atexit handlers, flushing. The
fork server's children do it (see :mod:`batchbook.runtime.forkserver`). Light on purpose.
"""

from __future__ import annotations

import atexit
import builtins
import os
import runpy
import sys
import threading
import types


def run_python(
    mode: str,
    args: list[str],
    compiled: types.CodeType | None,
    env_delta: dict[str, str],
    base_path: list[str],
) -> int:
    """Run ``-c code`` or ``-m module`` in this (forked) interpreter like a fresh one; return the exit code.

    Kept lean on purpose: every object touched here costs a copied page in the child.
    """
    flags, target, *rest = args
    env = os.environ  # the fork server's, i.e. the base environment, until the delta is applied
    for key, value in env_delta.items():
        env[key] = value
    extra = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    sys.path[:] = ["" if mode == "c" else os.getcwd(), *extra, *base_path]
    sys.argv = ["-c" if mode == "c" else "-m", *rest]
    sys.orig_argv = [sys.executable, *(f"-{f}" for f in flags), f"-{mode}", target, *rest]
    sys.dont_write_bytecode = "B" in flags or bool(env.get("PYTHONDONTWRITEBYTECODE"))
    # The fork server's own, never-written standard streams sit on fds 0-2 with the buffering a
    # fresh interpreter gives a pipe (stdout block-buffered, stderr line-buffered).
    sys.stdin, sys.stdout, sys.stderr = sys.__stdin__, sys.__stdout__, sys.__stderr__
    if "u" in flags or env.get("PYTHONUNBUFFERED"):
        sys.stdout.reconfigure(write_through=True)  # type: ignore[union-attr]
    # Import caches need no reset: FileFinder re-lists a directory whenever its mtime changes.
    main = types.ModuleType("__main__")
    main.__dict__["__builtins__"] = builtins
    sys.modules["__main__"] = main
    try:
        if mode == "c":
            if compiled is None:
                compiled = compile(target, "<string>", "exec", dont_inherit=True)
            exec(compiled, main.__dict__)
        else:
            runpy._run_module_as_main(target, alter_argv=True)  # type: ignore[attr-defined]
        code = 0
    except SystemExit as exc:
        code = _exit_code(exc)
    except BaseException as exc:
        # Leave this frame out of the traceback: a fresh interpreter has no such frame.
        if exc.__traceback__ is not None:
            exc.__traceback__ = exc.__traceback__.tb_next
        sys.excepthook(type(exc), exc, exc.__traceback__)
        code = 1
    return _finalize(code)


def _exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code & 0xFF
    print(exc.code, file=sys.stderr)
    return 1


def _finalize(code: int) -> int:
    """What interpreter shutdown does that a child must not skip: threads, atexit, flushing."""
    if threading.active_count() > 1:
        try:
            threading._shutdown()  # type: ignore[attr-defined]
        except BaseException:
            pass
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BrokenPipeError:
            code = 120
        except Exception:
            pass
    return code
