"""Logging set-up shared by every command.

The console gets short lines on stderr; log files always get everything at
DEBUG level with timestamps, tracebacks included, so a user report can be
diagnosed from ``DIR/virnucpro.log`` alone.
"""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path
from typing import TextIO

from virnucpro.errors import OutputError

LOGGER_NAME = "virnucpro"
#: A thread named ``SCOPE_PREFIX + name`` runs one scope of work (a sample of a many-sample run);
#: its helper threads are named ``<its name>/<role>`` (:func:`helper_thread_name`).
SCOPE_PREFIX = "virnucpro-scope:"
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


class _LogFileHandler(logging.FileHandler):
    """A file handler that survives a full disk or a file-size limit.

    The standard handler prints a ``--- Logging error ---`` traceback to stderr
    for every record it cannot write, and raises from ``close()``. This one
    stops writing after the first failed write, says so once on the console
    (one warning line) and closes quietly: the log is a diagnostic aid, and the
    run itself reports the failure when it next writes a result.
    """

    failed: bool = False

    def emit(self, record: logging.LogRecord) -> None:
        if not self.failed:
            super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:
        error = sys.exc_info()[1]
        if not isinstance(error, OSError):
            super().handleError(record)  # a formatting bug: keep the standard report
            return
        self.failed = True
        self._close_stream()
        logging.getLogger(LOGGER_NAME).warning(
            "cannot write the log file %s (%s); continuing without it", self.baseFilename, error.strerror or error
        )

    def close(self) -> None:
        self._close_stream()
        super().close()

    def _close_stream(self) -> None:
        self.acquire()
        try:
            stream, self.stream = self.stream, None  # type: ignore[assignment]
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    self.failed = True
        finally:
            self.release()


def add_log_file(path: str | Path) -> logging.Handler:
    """Also write every log record (DEBUG and up) to ``path``, appending.

    Adding the same path twice is a no-op and returns the existing handler.
    A later write failure (disk full, file-size limit) turns the file log off
    with one console warning instead of a traceback per record.

    Raises:
        OutputError: the file (or its directory) cannot be created or opened.
    """
    logger = logging.getLogger(LOGGER_NAME)
    resolved = str(Path(path).resolve())
    for handler in logger.handlers:
        if isinstance(handler, logging.FileHandler) and handler.baseFilename == resolved:
            return handler
    try:
        Path(resolved).parent.mkdir(parents=True, exist_ok=True)
        handler = _LogFileHandler(resolved, encoding="utf-8")
    except OSError as exc:
        raise OutputError(f"cannot write the log file {resolved}: {exc.strerror or exc}") from None
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter(_FILE_FORMAT))
    logger.addHandler(handler)
    return handler


def remove_log_file(handler: logging.Handler) -> None:
    """Detach and close a handler made by :func:`add_log_file`."""
    logging.getLogger(LOGGER_NAME).removeHandler(handler)
    handler.close()


def reset_logging() -> None:
    """Undo :func:`setup_console_logging` (used after in-process CLI calls): remove every handler
    and let records propagate again, so the embedding program's (or pytest's) logging sees them."""
    logger = logging.getLogger(LOGGER_NAME)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    logger.propagate = True


def helper_thread_name(role: str) -> str:
    """A name for a helper thread doing ``role``: ``virnucpro-<role>``, or, started by a scope's
    thread (see :data:`SCOPE_PREFIX`), ``<that thread's name>/<role>``: its records are then the
    scope's for :class:`ScopeFilter`."""
    current = threading.current_thread().name
    return f"{current}/{role}" if current.startswith(SCOPE_PREFIX) else f"virnucpro-{role}"


class ScopeFilter(logging.Filter):
    """Passes the records of one scope: logged by the scope's thread ``thread_name`` or one of its
    helper threads, or logged by a thread of no scope (the work queue's, in the main thread) with
    ``mention`` in the message (a line about one of the scope's tasks)."""

    def __init__(self, thread_name: str, mention: str | None = None) -> None:
        super().__init__()
        self.thread_name, self.mention = thread_name, mention

    def filter(self, record: logging.LogRecord) -> bool:
        name = record.threadName or ""
        if name == self.thread_name or name.startswith(self.thread_name + "/"):
            return True
        if self.mention is None or name.startswith(SCOPE_PREFIX):
            return False
        try:
            return self.mention in record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format is the handler's to report, not the filter's
            return False
