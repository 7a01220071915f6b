"""Logging set-up shared by every command.

The console gets short lines on stderr; log files always get everything at
DEBUG level with timestamps, tracebacks included, so a user report can be
diagnosed from ``DIR/virnucpro.log`` alone.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TextIO

LOGGER_NAME = "virnucpro"
_FILE_FORMAT = "%(asctime)s %(levelname)-7s %(processName)s %(name)s: %(message)s"


def setup_console_logging(verbosity: int = 0, stream: TextIO | None = None) -> logging.Logger:
    """Configure the ``virnucpro`` logger for the console.

    Args:
        verbosity: -1 quiet (warnings and errors), 0 normal, 1 or more debug.
        stream: where console lines go; ``sys.stderr`` by default.

    Returns:
        The package logger.
    """
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(logging.DEBUG)
    for handler in list(logger.handlers):
        if getattr(handler, "_virnucpro_console", False):
            logger.removeHandler(handler)
            handler.close()
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler._virnucpro_console = True  # type: ignore[attr-defined]
    level = logging.WARNING if verbosity < 0 else logging.DEBUG if verbosity > 0 else logging.INFO
    handler.setLevel(level)
    fmt = "%(levelname)s %(name)s: %(message)s" if verbosity > 0 else "%(message)s"
    handler.setFormatter(logging.Formatter(fmt))
    logger.addHandler(handler)
    logger.propagate = False
    return logger


def add_log_file(path: str | Path) -> logging.Handler:
    """Also write every log record (DEBUG and up) to ``path``, appending.

    Adding the same path twice is a no-op and returns the existing handler.
    """
    logger = logging.getLogger(LOGGER_NAME)
    resolved = str(Path(path).resolve())
    for handler in logger.handlers:
        if isinstance(handler, logging.FileHandler) and handler.baseFilename == resolved:
            return handler
    Path(resolved).parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(resolved, encoding="utf-8")
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter(_FILE_FORMAT))
    logger.addHandler(handler)
    return handler


def remove_log_file(handler: logging.Handler) -> None:
    """Detach and close a handler made by :func:`add_log_file`."""
    logging.getLogger(LOGGER_NAME).removeHandler(handler)
    handler.close()


def reset_logging() -> None:
    """Remove every handler from the package logger (used between in-process CLI calls)."""
    logger = logging.getLogger(LOGGER_NAME)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
