"""A real IPython kernel (ipykernel, driven by jupyter_client) on a real local service."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager

import batchbook as batch
from batchbook.functions.backend import Backend
from batchbook.server.discovery import stop_service
from tests.server.conftest import start


@dataclass
class Outcome:
    """What one cell gave: its stream output, its error and its result, as the notebook sees them."""

    stdout: str = ""
    stderr: str = ""
    error: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    streams: list[tuple[str, str]] = field(default_factory=list)  # (name, text) in order
    displays: list[dict[str, Any]] = field(default_factory=list)  # display_data bundles
    comms: list[tuple[str, str]] = field(default_factory=list)  # (comm id, method) sent

    @property
    def traceback(self) -> str:
        return "\n".join(self.error["traceback"]) if self.error else ""


class Kernel:
    def __init__(self, km: KernelManager):
        self.km = km
        self.client = km.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=60)

    def start(self, code: str) -> str:
        return str(self.client.execute(code))

    def collect(
        self, msg_id: str, timeout: float = 120, until: Callable[[Outcome], bool] | None = None
    ) -> Outcome:
        """The outputs of cell ``msg_id`` until the kernel is idle again (or ``until`` holds)."""
        out = Outcome()
        while True:
            msg = self.client.get_iopub_msg(timeout=timeout)
            kind, content = msg["msg_type"], msg["content"]
            if kind == "comm_msg":  # from whichever thread: the watcher's too
                out.comms.append((content["comm_id"], content["data"].get("method", "")))
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if kind == "stream":
                out.streams.append((content["name"], content["text"]))
                if content["name"] == "stdout":
                    out.stdout += content["text"]
                else:
                    out.stderr += content["text"]
            elif kind == "error":
                out.error = content
            elif kind == "display_data":
                out.displays.append(content["data"])
            elif kind == "execute_result":
                out.result = content["data"]
            elif kind == "status" and content["execution_state"] == "idle":
                return out
            if until is not None and until(out):
                return out

    def run(self, code: str, timeout: float = 120) -> Outcome:
        return self.collect(self.start(code), timeout)

    def ok(self, code: str) -> Outcome:
        """Run a cell that must not raise."""
        out = self.run(code)
        assert out.error is None, out.traceback
        return out

    def value(self, expression: str) -> Any:
        """A JSON-able value of the kernel's, read back."""
        out = self.ok(f"import json as _json; print(_json.dumps({expression}))")
        return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    """The local service (this process uses it too, to check what the kernel did)."""
    state = tmp_path_factory.mktemp("notebook") / "state"
    start(state)
    yield batch.use(state_dir=state)
    stop_service(state)


def start_kernel(kernels: Path) -> KernelManager:
    """An IPython kernel of this interpreter (its kernel spec written under ``kernels``)."""
    spec = kernels / "batchbook-test"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "test", "language": "python"})
    )
    km = KernelManager(
        kernel_name="batchbook-test",
        kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels)]),
    )
    km.start_kernel(cwd=str(Path(__file__).parent))
    return km


@pytest.fixture(scope="module")
def kernel(backend: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kernel]:
    """An IPython kernel of this interpreter with the extension loaded, on ``backend``."""
    km = start_kernel(tmp_path_factory.mktemp("kernels"))
    k = Kernel(km)
    state = backend.service.state_dir
    k.ok(f"import batchbook as batch\nbatch.use(state_dir={str(state)!r})\n%load_ext batchbook")
    yield k
    k.client.stop_channels()
    km.shutdown_kernel(now=True)
