"""``%%batch``: a notebook cell run as a job (or an array of them); ``%batch``: commands.

    %load_ext batchbook
    %%batch --array 100 --memory 4GiB
    result = fit(data[BATCH_INDEX])

The cell takes only the notebook names it reads (found with ``ast``, listed with their
pickled sizes before anything is submitted) and brings back the names it assigns (for an
array, a list per name in BATCH_INDEX order). What it prints streams into the cell; Ctrl-C
terminates its unfinished children.
"""

from __future__ import annotations

import argparse
import functools
import queue
import shlex
import sys
import types
from typing import Any, Literal

from IPython.core import magic_arguments
from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class

from batchbook.errors import ResourceNotFound, SerializationError
from batchbook.functions.api import attach, jobs
from batchbook.functions.api import map as batch_map
from batchbook.functions.backends import use
from batchbook.functions.mapjob import MapJob
from batchbook.functions.pickling import dumps, pickle_function, sources
from batchbook.notebook.cell import CellCode, run_cell
from batchbook.notebook.cellcode import CellNames, cell_names
from batchbook.notebook.output import CellOutput
from batchbook.wording import count, size

INTERRUPTED = "Interrupted in the notebook (Ctrl-C)"
STREAM_SECONDS = 0.5  # a cell's output is read at least this often while its job runs
COMMANDS = ("jobs", "logs", "cancel", "wait", "dashboard", "use")


@magics_class
class BatchMagics(Magics):
    def __init__(self, shell: Any):
        super().__init__(shell)
        self._cells: dict[str, bool] = {}  # run id of a cell's job -> whether it is an array

    @magic_arguments.magic_arguments()
    @magic_arguments.argument("--name", help="the job's name (default: cell-<execution count>)")
    @magic_arguments.argument("--queue", help="the job queue (default: the backend's)")
    @magic_arguments.argument("--vcpus", type=float, default=1, help="vCPUs per child (default 1)")
    @magic_arguments.argument("--memory", help="memory per child, e.g. 4GiB or 512 (MiB)")
    @magic_arguments.argument("--gpus", type=int, default=0, help="GPUs per child")
    @magic_arguments.argument(
        "--array", type=int, metavar="N", help="run N children, BATCH_INDEX 0 to N-1"
    )
    @magic_arguments.argument(
        "--over", metavar="VAR", help="one child per element of the notebook's VAR: BATCH_ITEM"
    )
    @magic_arguments.argument(
        "--depends-on",
        metavar="JOB",
        action="append",
        help="start after JOB succeeded (a MapJob variable, a map's name or a job id; repeatable)",
    )
    @magic_arguments.argument("--retries", type=int, default=0, help="retries per child")
    @magic_arguments.argument("--timeout", type=int, help="seconds an attempt may run")
    @magic_arguments.argument(
        "--stream",
        default="first",
        metavar="WHICH",
        help="whose output streams into the cell: first (child 0, the default), all, none, "
        "or child indices like 0,3; failed children's output is shown too, except with none",
    )
    @magic_arguments.argument(
        "--no-wait", action="store_true", help="return once submitted; %%batch wait NAME later"
    )
    @magic_arguments.argument("--detach", action="store_true", help="the same as --no-wait")
    @magic_arguments.argument(
        "--no-reuse",
        action="store_true",
        help="submit again even when this cell ran with the same values before",
    )
    @magic_arguments.argument(
        "--out", metavar="NAME", help="keep the job's MapJob in the notebook variable NAME"
    )
    @magic_arguments.argument(
        "--quiet", action="store_true", help="do not list what is sent and brought back"
    )
    @line_cell_magic
    def batch(self, line: str, cell: str | None = None) -> Any:
        """Run the cell as a job on the current batchbook backend (``%%batch``), or a command
        (``%batch``).

        The cell sees ``BATCH_INDEX`` (0 to N-1 with ``--array N``; 0 alone) and, with
        ``--over VAR``, ``BATCH_ITEM``, the element of VAR. It takes the notebook names it
        reads and brings back the names it assigns (for an array, a list per name in
        BATCH_INDEX order; a child that did not assign it gives None). Changes made in
        place to an object it read are not brought back. Imports run on the worker.

        Commands::

            %batch jobs                                  the runs, newest first
            %batch logs JOB [--index I] [--attempt N] [--tail N]
            %batch cancel JOB [JOB ...]                  stop what has not finished
            %batch wait JOB                              wait; a cell's names come back
            %batch dashboard                             queues, compute environments, runs
            %batch use local [--state-dir D] [--store URL] [--queue Q] | aws

        JOB is a variable holding a MapJob, a map's name or a run id.
        """
        if cell is None:
            return self._command(line)
        args = magic_arguments.parse_argstring(self.batch, line)
        return self._run_cell(args, cell)

    @property
    def _shell(self) -> Any:
        assert self.shell is not None, "the magics are used in an IPython shell"
        return self.shell

    @property
    def ns(self) -> dict[str, Any]:
        """The notebook's namespace."""
        return self._shell.user_ns  # type: ignore[no-any-return]

    # ------------------------------------------------------------------ %%batch
    def _run_cell(self, args: argparse.Namespace, cell: str) -> Any:
        if args.array is not None and args.over is not None:
            raise UsageError("%%batch: --array and --over cannot be combined; pick one")
        number = self._shell.execution_count
        filename = f"Cell In[{number}]"
        source = "\n" + cell  # line 1 is the %%batch line: line numbers are the cell's
        compile(source, filename, "exec")  # a SyntaxError shows here, nothing submitted
        names = cell_names(source)
        items = self._items(args)
        code = self._capture(names, source, filename)
        if not args.quiet:
            self._list(code, names, array=items is not None)
        size_ = len(items) if items is not None else 1
        job = batch_map(
            functools.partial(run_cell, code),
            range(size_),
            items if items is not None else [None],
            chunksize=1,
            name=args.name or f"cell-{number}",
            vcpus=args.vcpus,
            memory=args.memory,
            gpus=args.gpus,
            queue=args.queue,
            retries=args.retries,
            timeout=args.timeout,
            depends_on=[self._dependency(j) for j in args.depends_on or []] or None,
            reuse=not args.no_reuse,  # running the cell again does not pay twice
        )
        if job.reused:
            print(
                f"[batch] reused {job.name} (run {job.run_id}): this cell ran with the same "
                "code and values before; --no-reuse submits it again"
            )
        self._cells[job.id] = items is not None
        if args.out:
            self.ns[args.out] = job
        if args.no_wait or args.detach:
            where = args.out or job.name
            print(
                f"[batch] {job.name} (job {job.job_id}, {count(size_, 'child', 'children')}) "
                f"runs on; `%batch wait {where}` brings its names back, "
                f"`batch.attach({job.name!r})` finds it from any kernel"
            )
            return job
        self._wait(job, args.stream)
        return None

    def _items(self, args: argparse.Namespace) -> list[Any] | None:
        """The children's BATCH_ITEMs (None for --array N or a single job: no items)."""
        if args.over is not None:
            if args.over not in self.ns:
                raise UsageError(f"%%batch --over: the notebook has no variable {args.over!r}")
            try:
                items = list(self.ns[args.over])
            except TypeError:
                raise UsageError(
                    f"%%batch --over: {args.over} is a {type(self.ns[args.over]).__name__}, "
                    "not something to iterate over"
                ) from None
            if not items:
                raise UsageError(f"%%batch --over: {args.over} is empty; there is nothing to run")
            return items
        if args.array is not None:
            if args.array < 1:
                raise UsageError(f"%%batch --array: {args.array} children; give 1 or more")
            return [None] * args.array
        return None

    def _capture(self, names: CellNames, source: str, filename: str) -> CellCode:
        """Pickle each notebook value the cell reads, or refuse naming the one that cannot go."""
        values: dict[str, bytes] = {}
        filenames: set[str] = set()
        namespace = self.ns
        hidden = getattr(self._shell, "user_ns_hidden", {})  # IPython's own: open, exit, In...
        for name in names.reads:
            if name not in namespace:  # a builtin, or a NameError the job will report
                continue
            if name in hidden and namespace[name] is hidden[name]:
                continue  # the worker has its own (builtins.open, ...)
            value = namespace[name]
            try:
                if isinstance(value, types.FunctionType | type):
                    values[name] = pickle_function(value, filenames)
                else:
                    values[name] = dumps(value, f"{name!r}", filenames)
            except SerializationError as e:
                raise SerializationError(
                    f"%%batch: the cell reads {name} from the notebook, and it cannot be sent "
                    f"to the job: {e}"
                ) from None
        return CellCode(source, filename, values, names.assigns, sources(filenames))

    @staticmethod
    def _list(code: CellCode, names: CellNames, array: bool) -> None:
        sent = ", ".join(f"{n} ({size(len(b))})" for n, b in code.values.items()) or "nothing"
        back = ", ".join(names.assigns) or "nothing"
        each = " (a list each, in BATCH_INDEX order)" if array and names.assigns else ""
        notes = ["changes made in place to what is sent are not brought back"]
        if names.imports:
            notes.append(f"imports ({', '.join(names.imports)}) stay on the worker")
        print(f"[batch] sending {sent}; bringing back {back}{each}; {'; '.join(notes)}")

    def _wait(self, job: MapJob, stream: str) -> None:
        """Stream the job's output into the cell until it is final, then bring the names back
        (raising the first failure); Ctrl-C terminates what has not finished."""
        follow = _stream_choice(stream, job.size)
        output = None if follow is False else CellOutput(job, follow, sys.stdout)
        snapshots: queue.Queue[Any] = queue.Queue()
        unwatch = job.watch(snapshots.put)  # the watcher thread only queues; we print here
        snap = None
        try:
            while snap is None or not snap.final:
                try:  # news from the watcher, or every STREAM_SECONDS: output comes meanwhile
                    snap = snapshots.get(timeout=STREAM_SECONDS)
                except queue.Empty:
                    snap = job.snapshot()  # at most SNAPSHOT_SECONDS old: no extra Batch call
                if output is not None:
                    output.update(snap)
        except KeyboardInterrupt:
            job.cancel(INTERRUPTED)  # first: whatever comes next, the job stops
            last = snap or job.snapshot(max_age=0)  # as it stood when interrupted
            left = job.size - last.done - last.failed
            print(
                f"[batch] interrupted: terminated {count(left, 'unfinished child', 'unfinished children')}"
                f" of {job.name} ({last.done} had finished)",
                file=sys.stderr,
            )
            raise
        finally:
            unwatch()
        self._bring_back(job)

    def _bring_back(self, job: MapJob) -> None:
        results = job.results(return_exceptions=True)
        array = self._cells.get(job.id, job.size > 1)
        failures = [r for r in results if isinstance(r, BaseException)]
        values = [r if isinstance(r, dict) else {} for r in results]
        if array:
            names = list(dict.fromkeys(n for v in values for n in v))
            self.ns.update({n: [v.get(n) for v in values] for n in names})
        else:
            self.ns.update(values[0])
        if failures:
            if array:
                print(
                    f"[batch] {count(len(failures), 'child', 'children')} of {job.size} failed; "
                    "their entries are None",
                    file=sys.stderr,
                )
            raise failures[0]

    # ------------------------------------------------------------------ %batch
    def _command(self, line: str) -> Any:
        try:
            words = shlex.split(line)
        except ValueError as e:  # an unmatched quote
            raise UsageError(f"%batch: {e} in {line!r:.80}") from None
        if not words or words[0] not in COMMANDS:
            raise UsageError(
                f"%batch: {'a command is needed' if not words else repr(words[0]) + ' is not a command'}"
                f"; the commands are {', '.join(COMMANDS)} (%batch? explains each; %%batch runs a cell)"
            )
        command, rest = words[0], words[1:]
        return getattr(self, f"_cmd_{command}")(rest)

    def _cmd_jobs(self, rest: list[str]) -> Any:
        _no_arguments("jobs", rest)
        return jobs()

    def _cmd_logs(self, rest: list[str]) -> None:
        parser = _parser("logs")
        parser.add_argument("job")
        parser.add_argument("--index", type=int, default=0)
        parser.add_argument("--attempt", type=int)
        parser.add_argument("--tail", type=int)
        args = _parse(parser, rest)
        lines = self._job(args.job).logs(args.index, attempt=args.attempt, tail=args.tail)
        print("\n".join(lines) if lines else "[batch] no output")

    def _cmd_cancel(self, rest: list[str]) -> None:
        parser = _parser("cancel")
        parser.add_argument("jobs", nargs="+")
        for name in _parse(parser, rest).jobs:
            job = self._job(name)
            job.cancel("Cancelled with %batch cancel")
            print(f"[batch] {job.name}: cancelled what had not finished")

    def _cmd_wait(self, rest: list[str]) -> None:
        parser = _parser("wait")
        parser.add_argument("job")
        parser.add_argument("--stream", default="first")
        args = _parse(parser, rest)
        self._wait(self._job(args.job), args.stream)

    def _cmd_dashboard(self, rest: list[str]) -> Any:
        from batchbook.notebook.dashboard import dashboard

        _no_arguments("dashboard", rest)
        return dashboard()

    def _cmd_use(self, rest: list[str]) -> None:
        parser = _parser("use")
        parser.add_argument("backend", choices=["local", "aws"])
        parser.add_argument("--state-dir")
        parser.add_argument("--store")
        parser.add_argument("--queue")
        parser.add_argument("--region")
        parser.add_argument("--profile")
        args = _parse(parser, rest)
        chosen = use(
            args.backend,
            state_dir=args.state_dir,
            store=args.store,
            queue=args.queue,
            region=args.region,
            profile=args.profile,
        )
        print(f"[batch] using {chosen!r}")

    def _dependency(self, ref: str) -> MapJob | str:
        """What --depends-on names: a MapJob (variable, map name or run id), else a job id."""
        try:
            return self._job(ref)
        except ResourceNotFound:
            return ref  # Batch refuses it at submission if no such job exists

    def _job(self, ref: str) -> MapJob:
        """A MapJob: the notebook variable ``ref``, or the map named (or with run id) ``ref``."""
        found = self.ns.get(ref)
        if isinstance(found, MapJob):
            return found
        return attach(ref)


def _stream_choice(text: str, children: int) -> list[int] | Literal[False] | None:
    """--stream: False (none), None (all), or the child indices to follow."""
    if text == "none":
        return False
    if text == "all":
        return None
    if text == "first":
        return [0]
    try:
        indices = [int(part) for part in text.split(",")]
    except ValueError:
        raise UsageError(
            f"--stream: {text!r} is not first, all, none or child indices like 0,3"
        ) from None
    wrong = [i for i in indices if not 0 <= i < children]
    if wrong:
        raise UsageError(
            f"--stream: child {wrong[0]} does not exist; the children are 0 to {children - 1}"
        )
    return indices


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # a UsageError in the cell, not a SystemExit
        raise UsageError(f"%batch {self.prog}: {message}")


def _parser(command: str) -> argparse.ArgumentParser:
    return _Parser(prog=command, add_help=False)


def _parse(parser: argparse.ArgumentParser, words: list[str]) -> argparse.Namespace:
    return parser.parse_args(words)


def _no_arguments(command: str, rest: list[str]) -> None:
    if rest:
        raise UsageError(f"%batch {command}: takes no arguments (got {' '.join(rest)!r})")


def load(ipython: Any) -> None:
    """Register the magics (what ``%load_ext batchbook`` does)."""
    ipython.register_magics(BatchMagics)
