"""The code base stays lint-clean and the package root stays light."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff is installed by the dev extra")
def test_ruff_is_clean() -> None:
    result = subprocess.run(
        ["ruff", "check", "batchbook", "tests", "bench"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_package_root_and_fork_server_import_nothing_heavy() -> None:
    code = "import sys, batchbook.runtime.forkserver; print(sorted(m for m in ('pandas','boto3','botocore','numpy','sqlite3') if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_engine_layer_does_no_io() -> None:
    banned = ("sqlite3", "subprocess", "boto3", "ipywidgets", "threading", "socket", "time")
    for path in (ROOT / "batchbook" / "engine").glob("*.py"):
        text = path.read_text()
        for name in banned:
            assert f"import {name}" not in text, f"{path.name} imports {name}"


@pytest.mark.skipif(shutil.which("mypy") is None, reason="mypy is installed by the dev extra")
def test_mypy_is_clean() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "batchbook", "--ignore-missing-imports"],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_public_api_is_sorted_and_importable() -> None:
    import batchbook

    assert batchbook.__all__ == sorted(batchbook.__all__)
    for name in batchbook.__all__:
        assert getattr(batchbook, name) is not None
    assert callable(batchbook.map) and issubclass(batchbook.Executor, object)


def test_readme_opens_with_the_two_commands_and_links_only_inside_the_project() -> None:
    text = (ROOT / "README.md").read_text()
    lines = text.split("```bash\n", 1)[1].splitlines()[:2]
    assert lines[0].startswith("pip install -e . && batchbook demo")  # no dev extra to try it
    assert lines[1].startswith('pip install -e ".[dev]" && python -m pytest -q')
    assert "../" not in text  # a newcomer's clone has nothing beside it


def test_no_module_holds_more_than_600_lines() -> None:
    sizes = {
        str(p.relative_to(ROOT)): len(p.read_text().splitlines())
        for p in (ROOT / "batchbook").rglob("*.py")
    }
    assert {name: n for name, n in sizes.items() if n > 600} == {}


def test_no_two_test_modules_share_a_name() -> None:
    """Test folders have no __init__.py: pytest imports each module by its bare name, so a
    second tests/*/test_x.py stops the whole run at collection."""
    names = [p.name for p in (ROOT / "tests").rglob("test_*.py")]
    assert sorted({n for n in names if names.count(n) > 1}) == []
