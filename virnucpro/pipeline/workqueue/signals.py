"""SIGINT and SIGTERM while the work queue runs.

``with StopSignals(raise_at_once) as signals:`` installs one handler for both
signals in the main thread (elsewhere it does nothing) and restores the
previous handlers on exit. The first signal either raises
:class:`~virnucpro.pipeline.workqueue.tasks.RunInterrupted` at once
(``raise_at_once``, for ``in_process`` mode where the task runs in this very
thread) or is recorded in :attr:`StopSignals.signum` for the scheduler loop to
act on (stop the hand-out, stop the workers, then raise); a second signal
always raises at once.

Every signal caught is also recorded for the whole process
(:func:`stop_signal_seen`), so code between two runs can tell that a stop was
asked for even after the run that caught it has returned.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType, TracebackType
from typing import Any

from virnucpro.pipeline.workqueue.tasks import QUEUE_LOGGER, RunInterrupted

logger = logging.getLogger(QUEUE_LOGGER)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

_seen: int | None = None


def stop_signal_seen() -> int | None:
    """The first SIGINT/SIGTERM a run caught in this process (until cleared), else None."""
    return _seen


def clear_stop_signal() -> None:
    """Forget the signal :func:`stop_signal_seen` reports."""
    global _seen
    _seen = None


class StopSignals:
    """Context manager: SIGINT/SIGTERM handling for one run (see the module docstring).

    Attributes:
        signum: the first signal received inside the ``with`` block, or None.
    """

    def __init__(self, raise_at_once: bool) -> None:
        self.raise_at_once = raise_at_once
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                self._previous[signum] = signal.getsignal(signum)
                signal.signal(signum, self._handle)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for signum, old in self._previous.items():
            signal.signal(signum, old if old is not None else signal.SIG_DFL)
        self._previous = {}

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        global _seen
        if _seen is None:
            _seen = signum
        if self.raise_at_once or self.signum is not None:
            raise RunInterrupted(signum)
        self.signum = signum
        logger.warning("%s received: stopping workers, finished work is kept", signal.Signals(signum).name)
