"""The guard of a map with ``max_failures=`` or ``budget=``: one thread that follows the run
(woken by the backend's changes, never polling on a timer of its own) and cancels the rest
once more than ``max_failures`` inputs have failed or the running cost passes ``budget``."""

from __future__ import annotations

import threading
from collections.abc import Callable

from batchbook.errors import BatchbookError
from batchbook.functions.runcost import run_cost
from batchbook.functions.runstate import RunState
from batchbook.wording import count


class Guard(threading.Thread):
    """Cancels the rest of a run (with ``cancel(reason)``) once more than ``max_failures``
    inputs have failed, or once its running cost passes ``budget`` (USD)."""

    def __init__(
        self,
        job: RunState,
        cancel: Callable[[str], None],
        max_failures: int | None,
        budget: float | None,
    ):
        super().__init__(name=f"batchbook-guard-{job.id}", daemon=True)
        self.job, self.cancel = job, cancel
        self.max_failures, self.budget = max_failures, budget

    def run(self) -> None:
        version = 0
        try:
            while True:
                self.job._refresh()
                with self.job._lock:  # the handle's outcomes change under other refreshes
                    reason = self.reason()
                if reason:
                    self.cancel(reason)
                    return
                if self.job.done:
                    return
                version = self.job.backend.wait_for_change(version, 10)
        except BatchbookError:
            return  # the service went away; nothing left to guard

    def reason(self) -> str | None:
        """Why the rest must stop now (None: it goes on); call it under the job's lock."""
        if self.max_failures is not None:
            failed = sum(1 for o in self.job._outcomes.values() if not o.ok)
            if failed > self.max_failures:
                return (
                    f"max_failures: {count(failed, 'input')} failed "
                    f"(at most {self.max_failures} allowed)"
                )
        if self.budget is not None:
            spent = run_cost(self.job).total
            if spent > self.budget:
                return (
                    f"budget: ${spent:,.4f} spent (estimated), above the budget of "
                    f"${self.budget:,.4f}"
                )
        return None
