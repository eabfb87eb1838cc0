"""Where batchbook keeps its state on this machine: ``$BATCHBOOK_HOME``, else ``~/.batchbook``.

Read by the client and the service alike, without loading either's machinery.
"""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    return Path(os.environ.get("BATCHBOOK_HOME", Path.home() / ".batchbook"))


def default_state_dir() -> Path:
    """The local engine's state dir (``<home>/local``)."""
    return home() / "local"
