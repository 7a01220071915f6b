"""SIGINT/SIGTERM for a whole ``predict`` run, not only while a work queue runs.

:func:`stop_on_signals` holds a raising handler for the run's lifetime: a signal
that arrives while the parent itself works (translate, scoring, assembly,
model loading, between stages) stops the run at once. While a stage's
:class:`~virnucpro.pipeline.workqueue.manager.BatchQueueManager` runs, the queue's own
handler takes over (stop the workers, then raise); a signal the queue recorded
but did not act on (it arrived just as the last shard finished) is found by
:func:`check_stop` at the next stage boundary, so no further stage starts.

Fault hook for the tests: ``VIRNUCPRO_SIGNAL_AT=BOUNDARY[:INT|:TERM]`` sends the
real signal (SIGTERM by default; ``:KILL`` for SIGKILL) to this process at ``BOUNDARY``:

* ``after:translate``, ``after:score``: once that stage returned;
* ``after:embed``, ``after:dnabert``, ``after:esm``: one boundary under three names,
  once the embedding queue returned (both models run on it, so neither ends before
  the queue does);
* ``during:assemble``: after the first result table is written;
* ``last:dnabert``, ``last:esm``: as that model's last shard finishes, while the
  queue still runs (the queue stops at once if the other model's tasks are left,
  else records the signal and the next boundary acts on it);
* ``overlap:translate``: while translate and the embedding queue overlap, once the
  first DNABERT-S shard is finished and before translate writes the next shard
  (ESM-2 may already be embedding that first shard);
* ``sample:NAME`` (a many-sample run): as sample NAME is started (the sample before
  it may still run); ``sample-done:NAME``: once NAME finished (the next one runs).

``after:translate`` is sent by translate as it ends, while the queue embeds
(they overlap, see :mod:`virnucpro.pipeline.stages.stream`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from collections.abc import Iterator

from virnucpro.pipeline.workqueue.signals import StopSignals, clear_stop_signal, stop_signal_seen
from virnucpro.pipeline.workqueue.tasks import RunInterrupted

logger = logging.getLogger(__name__)

SIGNAL_AT_ENV = "VIRNUCPRO_SIGNAL_AT"


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """SIGINT/SIGTERM raise :class:`RunInterrupted` (a ``KeyboardInterrupt``) anywhere in the block."""
    clear_stop_signal()
    try:
        with StopSignals(raise_at_once=True):
            yield
    finally:
        clear_stop_signal()


def check_stop(boundary: str) -> None:
    """Stop at a stage boundary when a signal was caught (and not yet acted on) before it.

    Args:
        boundary: where the run is, e.g. ``after:dnabert`` (also the fault hook's name).

    Raises:
        RunInterrupted: a stop signal was seen; no further stage may start.
    """
    signal_at(boundary)
    signum = stop_signal_seen()
    if signum is not None:
        # The console's one "interrupted" line is cli/main's; this goes to the log file (and -v).
        logger.debug("%s received: stopping %s", signal.Signals(signum).name, boundary.replace(":", " "))
        raise RunInterrupted(signum)


def signal_wanted_at(boundary: str) -> bool:
    """True when the fault hook names ``boundary``."""
    name, _, which = os.environ.get(SIGNAL_AT_ENV, "").partition(":")
    return f"{name}:{which.partition(':')[0]}" == boundary


def signal_at(boundary: str) -> None:
    """The fault hook: send the configured signal to this process if ``boundary`` is the one named
    (``:KILL`` sends SIGKILL: the run dies at once, as by the OOM killer or ``kill -9``)."""
    if not signal_wanted_at(boundary):
        return
    kind = os.environ.get(SIGNAL_AT_ENV, "").split(":")[2:3]
    kind_name = kind[0].upper() if kind else ""
    signum = {"INT": signal.SIGINT, "SIGINT": signal.SIGINT, "KILL": signal.SIGKILL,
              "SIGKILL": signal.SIGKILL}.get(kind_name, signal.SIGTERM)
    logger.debug("%s: sending %s at %s", SIGNAL_AT_ENV, signal.Signals(signum).name, boundary)
    os.kill(os.getpid(), signum)
