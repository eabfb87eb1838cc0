"""How batchbook words things for people (every layer's messages use it)."""

from __future__ import annotations


def count(n: int, noun: str, plural: str | None = None) -> str:
    """``1 input``, ``2 inputs``, ``0 inputs`` (``plural``: when it is not noun + "s")."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"
