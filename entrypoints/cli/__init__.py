"""The ``custsync`` command line: one module per family of commands, all on ``main``."""

from entrypoints.cli import accounts, dead_letters, provision, reconcile, serve, status  # noqa: F401 - they register
from entrypoints.cli.root import main

__all__ = ["main"]
