"""A crash-surviving work queue: independent tasks on several devices, one worker process per device.

This package knows nothing of VirNucPro: no stage, model, file format or
result table. A caller gives :class:`BatchQueueManager` module-level worker
functions (load once, process one :class:`Task`) and a list of tasks (or a
:class:`TaskFeed` a producer thread fills while the queue runs); the
queue starts a ``spawn``-context process per device, feeds each one task
ahead (prefetch, background writes), restarts dead or stalled workers,
retries their tasks, turns SIGINT/SIGTERM into :class:`RunInterrupted` and
returns a :class:`RunReport`. Its only import outside this package is
:mod:`virnucpro.errors` (the exit-code classes a failed run raises).

Modules, from the caller inwards:

- :mod:`.manager`: :class:`BatchQueueManager`, the one entry point;
- :mod:`.feed`: :class:`TaskFeed`, tasks added while the queue runs (a producer thread);
- :mod:`.tasks`: what callers see (``Task``, events, ``RunReport``, ``DeferredResult``);
- :mod:`.scheduler`: the parent's heap of pending tasks, retries, hand-out and the report;
- :mod:`.pool`: starting, restarting, stall detection and shutdown of worker processes;
- :mod:`.signals`: SIGINT/SIGTERM while a queue runs;
- :mod:`.messages`: the typed messages on each worker's pipe;
- :mod:`.worker`: the worker process's main loop;
- :mod:`.inbox`: inside a worker, the pipe reader, prefetch and background-writer threads.
"""

from virnucpro.pipeline.workqueue.feed import FeedCancelled, TaskFeed
from virnucpro.pipeline.workqueue.manager import (
    DEFAULT_INIT_TIMEOUT,
    PREFETCH_ENV,
    BatchQueueManager,
    default_prefetch,
    resolve_callable,
)
from virnucpro.pipeline.workqueue.tasks import (
    DeferredResult,
    Event,
    Progress,
    RunInterrupted,
    RunReport,
    Task,
    TaskFailed,
    TaskFinished,
    TaskStarted,
    WorkerDied,
    WorkerRestarted,
    WorkerStarted,
)

__all__ = [
    "DEFAULT_INIT_TIMEOUT",
    "PREFETCH_ENV",
    "BatchQueueManager",
    "DeferredResult",
    "Event",
    "FeedCancelled",
    "Progress",
    "RunInterrupted",
    "RunReport",
    "Task",
    "TaskFailed",
    "TaskFeed",
    "TaskFinished",
    "TaskStarted",
    "WorkerDied",
    "WorkerRestarted",
    "WorkerStarted",
    "default_prefetch",
    "resolve_callable",
]
