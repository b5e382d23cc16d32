"""The ``streamguard`` command line. Domain packages expose plain functions; the
commands, their options and their messages live here."""

from streamguard.cli.main import main

__all__ = ["main"]
