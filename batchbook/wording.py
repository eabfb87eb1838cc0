"""How batchbook words things for people (every layer's messages use it)."""

from __future__ import annotations


def count(n: int, noun: str, plural: str | None = None) -> str:
    """``1 input``, ``2 inputs``, ``0 inputs`` (``plural``: when it is not noun + "s")."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"


def size(n: int) -> str:
    """``120 B``, ``1.2 KiB``, ``7.6 MiB``, ``2.0 GiB``: a byte count as people read it."""
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            break
    return f"{value:.1f} {unit}"
