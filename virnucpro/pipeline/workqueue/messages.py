"""What the parent and a worker process say to each other over that worker's pipe.

Every message is a frozen, picklable dataclass; both sides act on a message by
its type. The parent sends :data:`ToWorker` messages; the worker sends
:data:`FromWorker` messages. In ``in_process`` mode the same worker-side
messages are handed straight to the scheduler, so both modes share one set of
rules.

With ``prefetch`` a worker may hold more than one task: the one it runs
(possibly one more whose outputs a background thread is still writing) and
up to ``prefetch`` sent but not begun. It reads its pipe on a reader thread,
so :class:`StopWorker` and :class:`CancelTask` reach it while it computes.
These are internal to the work queue; stages and the dashboard see the events
of :mod:`virnucpro.pipeline.workqueue.tasks` instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from virnucpro.pipeline.workqueue.tasks import Task

# --------------------------------------------------------------------------- parent -> worker


@dataclass(frozen=True)
class RunTask:
    """Run this task, then wait for the next message."""

    task: Task


@dataclass(frozen=True)
class StopWorker:
    """Exit: at once when idle, at the next ``progress`` call when busy."""


@dataclass(frozen=True)
class CancelTask:
    """Give back the task ``task_key`` if it has not begun (answered by :class:`TaskWithdrawn`);
    ignored when it has begun (it then runs to its end)."""

    task_key: str


ToWorker = RunTask | StopWorker | CancelTask


# --------------------------------------------------------------------------- worker -> parent


@dataclass(frozen=True)
class WorkerReady:
    """``init_fn`` returned after ``init_seconds``; the worker waits for tasks (``info``: the
    state's ``worker_info`` dict, if it has one)."""

    pid: int
    init_seconds: float
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class WorkerInitFailed:
    """``init_fn`` raised (``error`` is one line, ``trace`` the traceback); the worker exits."""

    error: str
    trace: str


@dataclass(frozen=True)
class TaskBegun:
    """The worker started the task ``task_key`` (one of those it was sent)."""

    task_key: str


@dataclass(frozen=True)
class TaskWithdrawn:
    """The worker dropped the not-yet-begun task ``task_key`` after a :class:`CancelTask`."""

    task_key: str


@dataclass(frozen=True)
class FramesDone:
    """``frames`` more frames of the task are done (an increment)."""

    task_key: str
    frames: int


@dataclass(frozen=True)
class TaskDone:
    """``process_fn`` returned ``result`` after ``seconds``; its outputs are complete (a deferred
    write has finished)."""

    task_key: str
    result: dict[str, Any]
    seconds: float


@dataclass(frozen=True)
class TaskRaised:
    """``process_fn`` raised; ``write_error`` is the message of an
    :class:`~virnucpro.errors.OutputError` (never retried), else None;
    ``device_fault``: a sticky device error, after which the worker exits."""

    task_key: str
    error: str
    trace: str
    write_error: str | None
    device_fault: bool = False


@dataclass(frozen=True)
class ForwardedLog:
    """A ``virnucpro`` log record of the worker, for the parent to re-emit."""

    logger_name: str
    levelno: int
    text: str


FromWorker = (WorkerReady | WorkerInitFailed | TaskBegun | TaskWithdrawn | FramesDone | TaskDone | TaskRaised
              | ForwardedLog)
