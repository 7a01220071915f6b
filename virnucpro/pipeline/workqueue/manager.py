"""Run independent tasks on several devices, one worker process per device, surviving crashes.

The manager knows nothing about models. A stage gives it two importable,
module-level functions (as objects or ``"package.module:function"`` strings):

- ``init_fn(device: str, init_args: dict) -> state`` runs once per worker
  process (load the model here);
- ``process_fn(state, task: Task, progress: Callable[[int], None]) -> dict``
  runs once per task; it calls ``progress(n)`` after every ``n`` frames, writes
  its outputs with :mod:`virnucpro.pipeline.checkpoint` and returns a small
  picklable dict that ends up in :attr:`RunReport.finished`. It may instead
  return a :class:`DeferredResult` once its device work is done: the worker
  then writes the outputs (``finish()``) on a background thread while the next
  task computes, and reports the task finished only when they are complete;
- optionally ``prefetch_fn(state, task) -> prepared``: reads and prepares a
  task's inputs; a worker runs it on a background thread for a task it was
  sent ahead while another one computes, and ``process_fn`` is then called as
  ``process_fn(state, task, progress, prepared)``.

How it works: the parent keeps the pending tasks in a heap, largest first,
and hands them to the workers over each worker's own pipe: one to each idle
worker, and with ``prefetch=1`` (the default) one more ahead to a busy worker,
so the gap between two shards (writing one, reading the next) overlaps the
device work (``prefetch=0``: one task at a time). Because only the parent hands
out work, it always knows which tasks a worker holds: when a worker dies
(SIGKILL, OOM killer, segfault, ``os._exit``) the process sentinel fires, each
task it had begun is re-queued (up to ``max_task_retries`` times), each it was
sent ahead and had not begun is re-queued without being charged, and the
worker is restarted (up to ``max_worker_restarts`` times per device). A task
sent ahead is asked back when another worker runs out of work. Per-worker pipes, rather than one shared queue, mean a worker killed
mid-write can never corrupt or deadlock the other workers' channel.

Devices and threads: workers are started with the ``spawn`` method and the
parent never touches CUDA. A ``"cuda:N"`` worker sees exactly one GPU: its
``CUDA_VISIBLE_DEVICES`` is the N-th entry of the parent's (or ``N`` when the
parent sets none), so ``init_fn`` is called with ``"cuda:0"`` and a stray
``cuda:0`` or default-device allocation cannot put a second context on another
GPU. Logs, events and the dashboard keep the user's ``N``. ``"cpu"`` workers share the machine's
cores: each gets ``OMP_NUM_THREADS`` and ``torch.set_num_threads`` set to
``cores // number_of_cpu_workers``; every other worker gets ``cores // number_of_workers``
(its host-side work, OpenMP and ``TORCHINDUCTOR_COMPILE_THREADS`` for its compile pool),
so eight GPU workers do not each claim every core.

Signals: while :meth:`BatchQueueManager.run` runs in the main thread, SIGINT
and SIGTERM stop the hand-out, ask workers to stop at their next progress
call, terminate (then kill) them after ``stop_timeout`` seconds and raise
:class:`RunInterrupted` (a ``KeyboardInterrupt``, so the CLI exits 130).
Workers ignore SIGINT (the parent decides) and die with the parent
(``PR_SET_PDEATHSIG`` on Linux), so no worker outlives a killed run.

``in_process=True`` runs the same functions in the calling process with the
same events and retry rules (no crash recovery, obviously); use it for one
device without parallelism or for debugging.

Device faults: a task that raises a sticky (non-OOM) device error, after which
the CUDA context is unusable (illegal memory access, device-side assert,
launch failure, ECC), is reported, its worker exits and the slot is restarted
(the device is retired if the restart's ``init_fn`` fails); the attempt is not
charged to the task, which goes preferably to another device. A worker whose
``init_fn`` has not returned after ``init_timeout`` seconds is killed and its
device retired. Before a slot is restarted, the optional ``device_check(device)``
(called in the parent) may name a reason the device is unusable: the slot is then
retired instead. A worker that does not exit within ``kill_grace`` seconds of its
SIGKILL (a process stuck in the driver never does) is retired without waiting for it:
its tasks go to the other workers, uncharged, and it is never joined. Fault hooks for tests: see :mod:`~virnucpro.pipeline.workqueue.worker`.

Write failures: a task that raises :class:`~virnucpro.errors.OutputError`
(disk full, permission denied, read-only filesystem) is not retried and no
further task is handed out; tasks already running finish, and
:meth:`RunReport.raise_for_failures` raises that ``OutputError`` (one line,
exit 1) instead of :class:`ShardsFailedError`. Retrying would only recompute a
shard to fail the same write again.

This module is the facade; the work is split by job, each module importing
only those above it in this list (no cycles):

- :mod:`~virnucpro.pipeline.workqueue.tasks`: Task, the events, RunReport, RunInterrupted;
- :mod:`~virnucpro.pipeline.workqueue.messages`: the typed messages on a worker's pipe;
- :mod:`~virnucpro.pipeline.workqueue.signals`: SIGINT/SIGTERM handling;
- :mod:`~virnucpro.pipeline.workqueue.worker`: what runs inside a worker process;
- :mod:`~virnucpro.pipeline.workqueue.scheduler`: the heap, retries, report and events; in-process mode;
- :mod:`~virnucpro.pipeline.workqueue.pool`: spawning, feeding, watching and stopping workers.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from virnucpro.pipeline.workqueue.feed import FeedCancelled, TaskFeed
from virnucpro.pipeline.workqueue.pool import WorkerPool
from virnucpro.pipeline.workqueue.scheduler import QueueSettings, Scheduler, run_in_process
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
    shards_failed_error,
)
from virnucpro.pipeline.workqueue.worker import WorkerFn, callable_spec, default_cpu_threads, resolve_callable

PREFETCH_ENV = "VIRNUCPRO_PREFETCH"
"""Overrides the default ``prefetch`` (a number; ``0`` turns pipelining off) for every manager that
is not given one: the switch for comparing both paths end to end, and a way back should it misbehave."""

DEFAULT_INIT_TIMEOUT = 900.0
"""Model-load timeout: torch import, CUDA context and ESM-2 3B's 11 GB from a slow disk fit well inside."""

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
    "WorkerFn",
    "WorkerRestarted",
    "WorkerStarted",
    "default_cpu_threads",
    "default_prefetch",
    "resolve_callable",
    "shards_failed_error",
]


def default_prefetch() -> int:
    """``$VIRNUCPRO_PREFETCH`` when set (a whole number, 0 or more), else 1.

    Raises:
        ValueError: the variable is set to something else.
    """
    value = os.environ.get(PREFETCH_ENV, "").strip()
    if not value:
        return 1
    if not value.isdigit():
        raise ValueError(f"{PREFETCH_ENV}={value!r}: expected a whole number, 0 or more")
    return int(value)


class BatchQueueManager:
    """Hand tasks to one worker per device, largest first, restarting workers that die.

    Args:
        init_fn: ``init_fn(device, init_args) -> state``; module-level function or ``"module:function"``.
        process_fn: ``process_fn(state, task, progress) -> dict``; same rules.
        devices: one entry per worker, e.g. ``["cuda:0", "cuda:1"]`` or ``["cpu", "cpu"]``.
        init_args: picklable dict passed to every ``init_fn`` call.
        max_task_retries: how many times a failed task is tried again (so ``1 + max_task_retries`` attempts).
        max_worker_restarts: how many times a crashed worker is replaced, per device.
        on_event: called in the parent with each event (see ``Event``); its exceptions are logged, not raised.
        in_process: run in this process instead of spawning (exactly one device).
        worker_env: environment variables set in each worker before anything is imported
            (e.g. ``PYTORCH_CUDA_ALLOC_CONF``).
        cpu_threads: threads per CPU worker; default: cores divided by the number of CPU workers.
        stop_timeout: seconds workers get to stop before they are terminated, then killed.
        poll_interval: the longest the parent waits for events before re-checking its state.
        progress_interval: a worker sends progress at most this often (seconds).
        stall_timeout: seconds a busy worker may go without sending anything (progress is sent
            after every batch) before it is killed and its task retried; None or 0 = never.
        init_timeout: seconds a worker may spend in ``init_fn`` (importing torch, creating the CUDA
            context, loading the model) before it is killed and its device given up; None or 0 = never.
        prefetch: tasks a busy worker may be sent ahead (0: one task at a time, no background
            preparation or writing); ignored in ``in_process`` mode. None: ``$VIRNUCPRO_PREFETCH``, else 1.
        prefetch_fn: ``prefetch_fn(state, task) -> prepared``; same rules as ``process_fn``.
        device_threads: threads per non-CPU worker; default: cores divided by the number of workers.
        device_check: ``device_check(device) -> str | None``, called in the parent before a worker
            is restarted on ``device``; a string is why the device is unusable (the slot is
            retired). Must not create a CUDA context (use NVML).
        kill_grace: seconds a killed worker may take to exit before it is given up without
            waiting (see the module docstring).
    """

    def __init__(
        self,
        init_fn: WorkerFn,
        process_fn: WorkerFn,
        devices: Sequence[str],
        init_args: Mapping[str, Any] | None = None,
        *,
        max_task_retries: int = 2,
        max_worker_restarts: int = 3,
        on_event: Callable[[Event], None] | None = None,
        in_process: bool = False,
        worker_env: Mapping[str, str] | None = None,
        cpu_threads: int | None = None,
        stop_timeout: float = 3.0,
        poll_interval: float = 0.2,
        progress_interval: float = 0.5,
        stall_timeout: float | None = None,
        init_timeout: float | None = DEFAULT_INIT_TIMEOUT,
        prefetch: int | None = None,
        prefetch_fn: WorkerFn | None = None,
        device_threads: int | None = None,
        device_check: WorkerFn | None = None,
        kill_grace: float = 30.0,
    ) -> None:
        if not devices:
            raise ValueError("at least one device is needed")
        if in_process and len(devices) != 1:
            raise ValueError("in_process mode runs exactly one device")
        self.init_spec = callable_spec(init_fn)
        self.process_spec = callable_spec(process_fn)
        self.prefetch_spec = callable_spec(prefetch_fn) if prefetch_fn is not None else None
        self.prefetch = default_prefetch() if prefetch is None else prefetch
        if self.prefetch < 0:
            raise ValueError(f"prefetch must be 0 or more, not {self.prefetch}")
        self.devices = [d.strip().lower() for d in devices]
        self.init_args = dict(init_args or {})
        self.max_task_retries = max_task_retries
        self.max_worker_restarts = max_worker_restarts
        self.on_event = on_event
        self.in_process = in_process
        self.worker_env = dict(worker_env or {})
        n_cpu = sum(1 for d in self.devices if d == "cpu")
        self.cpu_threads = cpu_threads if cpu_threads is not None else default_cpu_threads(n_cpu)
        self.device_threads = (device_threads if device_threads is not None
                               else default_cpu_threads(len(self.devices)))
        self.device_check_spec = callable_spec(device_check) if device_check is not None else None
        self.kill_grace = kill_grace
        self.stop_timeout = stop_timeout
        self.poll_interval = poll_interval
        self.progress_interval = progress_interval
        self.stall_timeout = stall_timeout
        self.init_timeout = init_timeout

    def _settings(self) -> QueueSettings:
        return QueueSettings(
            init_spec=self.init_spec, process_spec=self.process_spec, init_args=self.init_args,
            max_task_retries=self.max_task_retries, max_worker_restarts=self.max_worker_restarts,
            worker_env=self.worker_env, cpu_threads=self.cpu_threads, stop_timeout=self.stop_timeout,
            poll_interval=self.poll_interval, progress_interval=self.progress_interval,
            stall_timeout=self.stall_timeout, init_timeout=self.init_timeout,
            prefetch=self.prefetch, prefetch_spec=self.prefetch_spec, device_threads=self.device_threads,
            device_check_spec=self.device_check_spec, kill_grace=self.kill_grace,
        )

    def run(self, tasks: Iterable[Task] | TaskFeed) -> RunReport:
        """Process every task; return when each one has finished or failed for good.

        Args:
            tasks: the tasks, or a :class:`~virnucpro.pipeline.workqueue.feed.TaskFeed` another
                thread adds them to while the queue runs (workers start before the first one
                arrives; the run ends once the feed is closed and its tasks are done).

        Raises:
            RunInterrupted: SIGINT/SIGTERM arrived (workers are stopped first; a feed is cancelled).
            ValueError: two tasks share a key.
        """
        scheduler = Scheduler(self.devices, self._settings(), self.on_event)
        if isinstance(tasks, TaskFeed):
            scheduler.feed = tasks
        else:
            scheduler.add(tasks)
        started = time.monotonic()
        ended = False
        try:
            if scheduler.pending or scheduler.more_coming:
                if self.in_process:
                    run_in_process(scheduler)
                else:
                    WorkerPool(scheduler).run()
            ended = True
        finally:
            scheduler.report.seconds = time.monotonic() - started
            feed = scheduler.feed
            if feed is not None and not feed.exhausted:
                # Stopped early (signal, no worker left): the producer must stop too.
                leftover = feed.take()
                feed.cancel()
                if ended:
                    scheduler.add(leftover)  # after a write error: not run
                    if scheduler.pending:
                        scheduler.fail_remaining()
        return scheduler.report
