"""What the parent and a worker process say to each other over that worker's pipe.

Every message is a frozen, picklable dataclass; both sides act on a message by
its type. The parent sends :data:`ToWorker` messages; the worker sends
:data:`FromWorker` messages. In ``in_process`` mode the same worker-side
messages are handed straight to the scheduler, so both modes share one set of
rules.

While a worker is busy with a task the parent sends it only
:class:`StopWorker`, so a busy worker treats any waiting message as "stop".
These are internal to the work queue; stages and the dashboard see the events
of :mod:`virnucpro.pipeline.work_types` instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from virnucpro.pipeline.work_types import Task

# --------------------------------------------------------------------------- parent -> worker


@dataclass(frozen=True)
class RunTask:
    """Run this task, then wait for the next message."""

    task: Task


@dataclass(frozen=True)
class StopWorker:
    """Exit: at once when idle, at the next ``progress`` call when busy."""


ToWorker = RunTask | StopWorker


# --------------------------------------------------------------------------- worker -> parent


@dataclass(frozen=True)
class WorkerReady:
    """``init_fn`` returned after ``init_seconds``; the worker waits for tasks."""

    pid: int
    init_seconds: float


@dataclass(frozen=True)
class WorkerInitFailed:
    """``init_fn`` raised (``error`` is one line, ``trace`` the traceback); the worker exits."""

    error: str
    trace: str


@dataclass(frozen=True)
class TaskBegun:
    """The worker started the task it was sent."""

    task_key: str


@dataclass(frozen=True)
class FramesDone:
    """``frames`` more frames of the task are done (an increment)."""

    task_key: str
    frames: int


@dataclass(frozen=True)
class TaskDone:
    """``process_fn`` returned ``result`` after ``seconds``."""

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


FromWorker = WorkerReady | WorkerInitFailed | TaskBegun | FramesDone | TaskDone | TaskRaised | ForwardedLog
