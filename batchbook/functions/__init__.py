"""Python functions as Batch array jobs: pickling, the object store, the runner, map/submit."""
