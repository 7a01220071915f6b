"""The ``virnucpro`` command line. Declarations only: each command calls one pipeline ``main``."""

from virnucpro.cli.main import cli, main

__all__ = ["cli", "main"]
