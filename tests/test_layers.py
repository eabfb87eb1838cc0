"""The layers hold: imports point down only, read two ways.

engine <- runtime <- server, and the function layer talks only to a Batch endpoint and an
object store: it never loads the engine or the runtime, not even through service discovery.
The Batch terms all of them share live in batchbook/vocabulary.py and validation.py.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "batchbook"

# layer -> the layers it must never import (by any path: top level or inside a function)
NEVER = {
    "engine": ("runtime", "server", "functions", "notebook", "cli"),
    "runtime": ("server", "functions", "notebook", "cli"),
    "server": ("engine", "functions", "notebook", "cli"),
    "functions": ("engine", "runtime", "notebook", "cli"),
    "notebook": ("engine", "runtime", "server", "cli"),
    "aws": ("engine", "runtime", "server", "functions", "notebook", "cli"),
    "cost": ("engine", "runtime", "server", "functions", "notebook", "cli", "aws"),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path) -> set[str]:
    """Every batchbook module (or name in the package face) a file imports, anywhere in it."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("batchbook")}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "batchbook":
                out |= {f"batchbook.{a.name}" for a in node.names}
            elif node.module.startswith("batchbook."):
                out.add(node.module)
    return out


def layer_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def sources() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "models" not in p.parts)


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_import_crosses_a_layer_upward(path: Path) -> None:
    layer = layer_of(module_name(path))
    modules = {module_name(p) for p in sources()}
    for target in imported(path):
        assert target in modules, f"{path.name} imports {target}: not a module (the package face?)"
        assert layer_of(target) not in NEVER.get(layer, ()), f"{path.name} imports {target}"


def test_the_runtime_names_no_module_of_the_function_layer() -> None:
    for path in (PACKAGE / "runtime").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                text = node.value
                assert "batchbook.functions" not in text, path.name
                # its own modules only: never a test of whose module a command runs
                assert not text.startswith("batchbook.") or text.startswith("batchbook.runtime.")


def test_a_map_loads_neither_the_engine_nor_the_runtime(tmp_path: Path) -> None:
    code = textwrap.dedent(
        f"""
        import sys
        import batchbook as batch
        from batchbook.server.discovery import stop_service

        batch.use(state_dir={str(tmp_path / "state")!r})  # discovery starts the service: another process
        try:
            assert batch.map(abs, [-1, -2]).results() == [1, 2]
            assert batch.submit(abs, -3).result() == 3
        finally:
            stop_service({str(tmp_path / "state")!r})
        print(sorted(m for m in sys.modules if m.startswith(("batchbook.engine", "batchbook.runtime"))))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_a_cell_runs_on_a_worker_without_ipython() -> None:
    code = textwrap.dedent(
        """
        import sys
        from batchbook.notebook.cell import CellCode, run_cell
        out = run_cell(CellCode("import math\\nr = math.sqrt(BATCH_ITEM) + BATCH_INDEX", "Cell In[1]", {}, ("r",)), 2, 16)
        assert out == {"r": 6.0}, out
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("IPython", "ipykernel"))
        assert not loaded, loaded
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
