"""Where batchbook keeps its state on this machine: ``$BATCHBOOK_HOME``, else ``~/.batchbook``.

Read by the client and the service alike, without loading either's machinery.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from batchbook.errors import UnsafeStateDir


def home() -> Path:
    return Path(os.environ.get("BATCHBOOK_HOME", Path.home() / ".batchbook"))


def default_state_dir() -> Path:
    """The local engine's state dir (``<home>/local``)."""
    return home() / "local"


def private_dir(path: str | os.PathLike[str]) -> Path:
    """``path`` as a folder only this user can use: made 0700 (its missing parents too), or,
    if it exists, checked (see check_private) and closed to others' reading (0700)."""
    path = Path(path)
    make_private_dirs(path)
    mode = check_private(path)
    if mode & 0o077:
        os.chmod(path, 0o700)
    return path


def make_private_dirs(path: Path) -> None:
    """Make ``path`` and its missing parents, each 0700 (os.makedirs gives parents the
    default mode)."""
    missing = []
    while not path.exists():
        missing.append(path)
        if path.parent == path:
            break
        path = path.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:  # made meanwhile by another process
            pass


def check_private(path: Path) -> int:
    """The mode of ``path``, which must be this user's and writable by nobody else: a state
    dir planted in a shared folder by another user would make your jobs run their commands
    as you, and read your inputs, results and logs. UnsafeStateDir names the path."""
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        raise UnsafeStateDir(f"{path}: a symbolic link; give the folder itself")
    if st.st_uid != os.getuid():
        raise UnsafeStateDir(
            f"{path}: owned by uid {st.st_uid}, not by you (uid {os.getuid()}); "
            "use a state dir of your own"
        )
    if st.st_mode & 0o022:
        raise UnsafeStateDir(
            f"{path}: writable by others (mode {stat.S_IMODE(st.st_mode):o}); "
            "chmod 700 it, or use another"
        )
    return stat.S_IMODE(st.st_mode)


def private_opener(path: str, flags: int) -> int:
    """For ``open(..., opener=private_opener)``: a new file readable by this user only."""
    return os.open(path, flags, 0o600)
