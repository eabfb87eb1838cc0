"""batchbook's version: one place (pyproject reads it, and so does the service's ping)."""

__version__ = "0.1.0"
