"""Nobody else gets in: the state dir is 0700 and every file in it 0600, whoever made it;
a state dir (or key file) that is not yours, or open to others, is refused by path."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import batchbook as batch
from batchbook.errors import UnsafeStateDir
from batchbook.server.discovery import ensure_service, find_service, stop_service

NOBODY = 65534


def job_umask(_: object = None) -> int:
    mask = os.umask(0)
    os.umask(mask)
    print(f"umask {mask:o}")  # a log stream too
    return mask


def test_everything_in_a_new_state_dir_is_private_and_jobs_keep_their_umask(
    tmp_path: Path,
) -> None:
    state = tmp_path / "new" / "nested" / "state"  # parents that do not exist yet
    here = job_umask()
    with batch.use(state_dir=state):
        job = batch.map(job_umask, [None], wait=True)
        job.logs(0)
        assert job.results() == [here]  # the fork server's 077 is its own, not the jobs'
    stop_service(state)
    modes = {str(p.relative_to(state)): stat.S_IMODE(p.lstat().st_mode) for p in state.rglob("*")}
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert any(name.startswith("store/runs/") for name in modes)  # inputs and results
    assert any(name.startswith("logs/") for name in modes) and "state.db" in modes
    wrong = {
        name: f"{mode:o}"
        for name, mode in modes.items()
        if mode != (0o700 if (state / name).is_dir() else 0o600)
    }
    assert wrong == {}


def test_another_user_reads_nothing(tmp_path: Path) -> None:
    state = tmp_path / "state"
    os.chmod(tmp_path, 0o755)  # the parent lets others look in: the state dir must not
    with batch.use(state_dir=state):
        batch.map(job_umask, [None], wait=True)
    stop_service(state)
    targets = [str(state / "state.db"), str(state / "credentials.json"), str(state / "store")]
    probe = (
        "import os, sys\n"
        f"os.setgid({NOBODY}); os.setuid({NOBODY})\n"
        "for path in sys.argv[1:]:\n"
        "    try:\n"
        "        os.listdir(path) if os.path.isdir(path) else open(path, 'rb').read(1)\n"
        "        print('read', path)\n"
        "    except PermissionError:\n"
        "        print('refused', path)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, *targets], capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == [w for t in targets for w in ("refused", t)]


def test_a_state_dir_someone_else_owns_or_can_write_is_refused(tmp_path: Path) -> None:
    planted = tmp_path / "planted"
    planted.mkdir(mode=0o700)
    os.chown(planted, NOBODY, NOBODY)
    with pytest.raises(UnsafeStateDir, match=rf"{planted}: owned by uid {NOBODY}, not by you"):
        ensure_service(planted)
    with pytest.raises(UnsafeStateDir, match="owned by uid"):
        find_service(planted)
    serve = subprocess.run(
        [sys.executable, "-m", "batchbook", "serve", "--state-dir", str(planted)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert serve.returncode == 1 and f"{planted}: owned by uid {NOBODY}" in serve.stderr
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    with pytest.raises(UnsafeStateDir, match=rf"{shared}: writable by others \(mode 777\)"):
        ensure_service(shared)


def test_a_key_file_others_can_read_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "state"
    service = ensure_service(state)
    stop_service(state)
    os.chmod(state / "credentials.json", 0o644)
    with pytest.raises(UnsafeStateDir, match=r"credentials.json: must be a file of yours"):
        ensure_service(state)
    assert service.state_dir == state.resolve()
