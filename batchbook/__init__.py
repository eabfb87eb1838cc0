"""batchbook: run Python functions as AWS Batch array jobs from a notebook.

The package root stays light on purpose: the local engine's fork server imports
it, and every import here would be paid by every job it starts.
"""

from batchbook import errors

__version__ = "0.1.0"

__all__ = ["__version__", "errors"]
