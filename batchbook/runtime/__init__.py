"""Drives the engine for real: SQLite store, fork-server executor, log files, the scheduler loop."""
