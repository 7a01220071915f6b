"""The public types of the work queue: tasks, the events a run reports, and its outcome.

:class:`Task` is what a stage hands to
:class:`~virnucpro.pipeline.workqueue.manager.BatchQueueManager`; the events
(:data:`Event`) go to its ``on_event`` callback (the dashboard) in the parent
process; :class:`RunReport` is what ``run`` returns and :class:`RunInterrupted`
what it raises on SIGINT/SIGTERM. Import them from
:mod:`virnucpro.pipeline.workqueue.manager`; this module holds them so that the
worker side, the scheduler and the dashboard share one definition without
importing each other.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from virnucpro.errors import OutputError, ShardsFailedError

# Every module of the work queue logs under the facade's name, so log lines read as before the split.
QUEUE_LOGGER = "virnucpro.pipeline.workqueue"
logger = logging.getLogger(QUEUE_LOGGER)


@dataclass(frozen=True)
class Task:
    """One unit of work.

    Attributes:
        key: unique name, e.g. ``"shard-00012:esm"``.
        size: number of frames; larger tasks are handed out first and it is
            the total the dashboard shows for the task.
        payload: picklable arguments for ``process_fn`` (input path, output path...).
        cost: the order key: the costliest pending task is handed out first (ties in the
            order queued); None = ``size``. Lets a caller mixing kinds of work (a small and a
            large model) put the long tasks first without changing what ``size`` counts.
        rank: compared before ``cost``: a pending task of a lower rank is handed out first (a
            queue shared by several producers serves the earlier ones' tasks first); 0 by default.
    """

    key: str
    size: int
    payload: dict[str, Any] = field(default_factory=dict)
    cost: float | None = None
    rank: int = 0

    @property
    def order_cost(self) -> float:
        """``cost``, or ``size`` when no cost was given."""
        return float(self.size) if self.cost is None else float(self.cost)


@dataclass(frozen=True)
class DeferredResult:
    """What a ``process_fn`` may return once its device work is done and the results are on the host.

    ``finish()`` does the rest (serialise, write atomically, checksum, ``.done``
    marker) and returns the task's result dict. With ``prefetch`` the worker runs
    it on a background writer thread while the next task computes, and reports the
    task done only after it returned; otherwise it runs at once, as if
    ``process_fn`` had done it. ``finish`` must not use the device (a device error
    there is not recognised as one). An :class:`OutputError` it raises is a write
    failure, as from ``process_fn``.
    """

    finish: Callable[[], dict[str, Any] | None]


@dataclass(frozen=True)
class WorkerStarted:
    """A worker finished ``init_fn`` and is ready for tasks (``info``: the ``worker_info`` dict of
    the state ``init_fn`` returned, if it has one: what the init wants recorded, e.g. load times)."""

    worker_id: int
    device: str
    pid: int | None
    init_seconds: float
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskStarted:
    """A worker began a task (``attempt`` counts from 1)."""

    worker_id: int
    device: str
    task_key: str
    size: int
    attempt: int


@dataclass(frozen=True)
class Progress:
    """``frames`` more frames of a task are done (an increment, not a total)."""

    worker_id: int
    task_key: str
    frames: int


@dataclass(frozen=True)
class TaskFinished:
    """A task completed; ``result`` is what ``process_fn`` returned."""

    worker_id: int
    task_key: str
    result: dict[str, Any]
    seconds: float


@dataclass(frozen=True)
class TaskFailed:
    """An attempt at a task failed (exception or worker death); ``will_retry`` says whether it is re-queued."""

    worker_id: int
    task_key: str
    error: str
    attempt: int
    will_retry: bool


@dataclass(frozen=True)
class WorkerDied:
    """A worker process exited unexpectedly, or its ``init_fn`` raised."""

    worker_id: int
    device: str
    exitcode: int | None
    task_key: str | None
    reason: str
    will_restart: bool


@dataclass(frozen=True)
class WorkerRestarted:
    """A replacement process was started for a worker that died (``restarts`` so far on this slot)."""

    worker_id: int
    device: str
    restarts: int


Event = WorkerStarted | TaskStarted | Progress | TaskFinished | TaskFailed | WorkerDied | WorkerRestarted


class RunInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM stopped a run; finished outputs are kept. The CLI exits 130."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum


@dataclass
class RunReport:
    """What :meth:`BatchQueueManager.run` did.

    Attributes:
        finished: task key -> the dict ``process_fn`` returned.
        failed: task key -> the last error, for tasks that used up their retries.
        worker_errors: ``"worker N (device)"`` -> why that worker was given up.
        seconds: wall time of the run.
        write_error: the message of the first :class:`OutputError` a task raised (the run
            stopped handing out tasks then); None if there was none.
        not_run: keys of the tasks never started because of ``write_error``.
    """

    finished: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    worker_errors: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    write_error: str | None = None
    not_run: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no task failed."""
        return not self.failed and not self.not_run

    def raise_for_failures(self, stage: str = "") -> None:
        """Raise :class:`OutputError` after a write failure, else :class:`ShardsFailedError` naming
        the failed tasks, if any (see :func:`shards_failed_error`)."""
        if self.write_error is not None:
            for key, error in self.failed.items():
                logger.debug("task %s failed: %s", key, error)
            logger.info("%s%d task(s) finished and are kept; %d not started", f"{stage}: " if stage else "",
                        len(self.finished), len(self.not_run))
            raise OutputError(self.write_error)
        if self.failed:
            raise shards_failed_error(self, stage)


def shards_failed_error(report: RunReport, stage: str = "") -> ShardsFailedError:
    """A one-line :class:`ShardsFailedError` for a report with failed tasks.

    The full error of each task is logged at ERROR level here; the message
    names up to five tasks and the first error.
    """
    for key, error in report.failed.items():
        logger.error("task %s failed: %s", key, error)
    keys = sorted(report.failed)
    shown = ", ".join(keys[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")
    first = report.failed[keys[0]].splitlines()[0] if keys else ""
    where = f"{stage}: " if stage else ""
    return ShardsFailedError(
        f"{where}{len(keys)} task(s) failed ({shown}; first error: {first}); "
        f"{len(report.finished)} finished task(s) are kept, re-run the same command to retry"
    )
