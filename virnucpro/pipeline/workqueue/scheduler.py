"""The parent's bookkeeping for one run of the work queue, shared by both modes.

:class:`Scheduler` owns the pending tasks (a heap, largest first), the attempt
count of every task, the :class:`~virnucpro.pipeline.workqueue.tasks.RunReport`
and one :class:`Slot` per device. It turns each worker message
(:mod:`virnucpro.pipeline.workqueue.messages`) into report entries and public
events, and applies the retry rules: a failed attempt is re-queued while
``max_task_retries`` allows, and an :class:`~virnucpro.errors.OutputError`
is never retried and empties the queue (``report.not_run``). An attempt ended
by a sticky device error is not charged to the task (the device broke, not the
task): it is re-queued for another device (:meth:`Scheduler.pop_for`) while the
worker exits and its slot is restarted. That is bounded by
``max_worker_restarts`` per slot, so a task that breaks every device still ends.

With ``prefetch`` a slot holds up to ``prefetch`` tasks sent but not begun
besides the one it runs (and one whose outputs it may still be writing). An
attempt is charged when the worker reports :class:`TaskBegun`, so a task that
was sent but never begun (its worker died, faulted or gave it back) is
re-queued uncharged (:meth:`Scheduler.requeue_unbegun`).

:func:`run_in_process` drives it with one slot in the calling process;
:class:`virnucpro.pipeline.workqueue.pool.WorkerPool` drives it with spawned workers.
"""

from __future__ import annotations

import functools
import heapq
import logging
import os
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from virnucpro.pipeline.workqueue.feed import TaskFeed
from virnucpro.pipeline.workqueue.messages import (
    ForwardedLog,
    FramesDone,
    FromWorker,
    TaskBegun,
    TaskDone,
    TaskRaised,
    TaskWithdrawn,
    WorkerInitFailed,
    WorkerReady,
)
from virnucpro.pipeline.workqueue.signals import StopSignals
from virnucpro.pipeline.workqueue.tasks import (
    QUEUE_LOGGER,
    Event,
    Progress,
    RunReport,
    Task,
    TaskFailed,
    TaskFinished,
    TaskStarted,
    WorkerDied,
    WorkerStarted,
)
from virnucpro.pipeline.workqueue.worker import DeviceFault, resolve_callable, run_task, worker_info

logger = logging.getLogger(QUEUE_LOGGER)


@dataclass(frozen=True)
class QueueSettings:
    """The options of one run (see :class:`~virnucpro.pipeline.workqueue.manager.BatchQueueManager`)."""

    init_spec: str
    process_spec: str
    init_args: dict[str, Any] = field(default_factory=dict)
    max_task_retries: int = 2
    max_worker_restarts: int = 3
    worker_env: dict[str, str] = field(default_factory=dict)
    cpu_threads: int | None = None
    stop_timeout: float = 3.0
    poll_interval: float = 0.2
    progress_interval: float = 0.5
    stall_timeout: float | None = None
    init_timeout: float | None = None
    prefetch: int = 1
    prefetch_spec: str | None = None
    device_threads: int | None = None
    device_check_spec: str | None = None
    kill_grace: float = 30.0


@dataclass
class Slot:
    """One device's worker, across restarts.

    ``tasks`` are the tasks sent to the current process and not yet done or
    failed, in the order sent (the worker runs them in that order); ``begun``
    the keys of those it reported begun (at most two: one writing, one computing);
    ``withdrawing`` those the parent asked back with ``CancelTask``.
    """

    worker_id: int
    device: str
    process: Any = None
    conn: Connection | None = None
    ready: bool = False
    tasks: list[Task] = field(default_factory=list)
    begun: set[str] = field(default_factory=set)
    withdrawing: set[str] = field(default_factory=set)
    launches: int = 0
    restarts: int = 0
    retired: bool = False
    last_heard: float = 0.0  # when the busy worker last sent anything (progress, logs)
    stalled: bool = False  # killed by the parent for making no progress
    launched_at: float = 0.0  # when the current process was started (for the model-load timeout)
    init_hung: bool = False  # killed by the parent for not finishing init_fn in time
    device_fault: str | None = None  # the sticky device error the worker is exiting after
    killed_at: float | None = None  # when the parent sent the current process SIGKILL

    @property
    def task(self) -> Task | None:
        """The task the worker runs (the latest begun), None when it runs none."""
        running = [t for t in self.tasks if t.key in self.begun]
        return running[-1] if running else None

    def unbegun(self) -> list[Task]:
        """The tasks sent to the worker that it has not begun."""
        return [t for t in self.tasks if t.key not in self.begun]

    def take(self, key: str) -> Task | None:
        """Remove the task ``key`` from the slot; None if it holds no such task."""
        for i, task in enumerate(self.tasks):
            if task.key == key:
                del self.tasks[i]
                self.begun.discard(key)
                self.withdrawing.discard(key)
                return task
        return None

    def clear(self) -> list[Task]:
        """Forget every task of the slot (its process is gone); returns them."""
        tasks, self.tasks = self.tasks, []
        self.begun, self.withdrawing = set(), set()
        return tasks

    @property
    def label(self) -> str:
        """``"worker cpu-0"`` / ``"worker cuda:1"``, as logs and ``RunReport.worker_errors`` name it."""
        return f"worker {worker_name(self.worker_id, self.device)}"


def worker_name(worker_id: int, device: str) -> str:
    """A worker's own name: ``cpu-<worker id>`` for CPU workers (they share one device), else the device."""
    return f"cpu-{worker_id}" if device == "cpu" else device


class Scheduler:
    """Pending tasks, attempts, the report and the slots of one run.

    Args:
        devices: one slot per entry.
        settings: the run's options.
        on_event: called with each public event; its exceptions are logged at DEBUG, never raised.
    """

    def __init__(self, devices: Sequence[str], settings: QueueSettings,
                 on_event: Callable[[Event], None] | None) -> None:
        self.settings = settings
        self.slots = [Slot(i, d) for i, d in enumerate(devices)]
        self.report = RunReport()
        self._on_event = on_event
        self._heap: list[tuple[int, float, int, Task]] = []
        self._seq = 0
        self._first_seq: dict[str, int] = {}  # task key -> its place when first queued
        self._attempts: dict[str, int] = {}
        self._avoid: dict[str, set[int]] = {}  # task key -> worker ids whose device faulted on it
        self.feed: TaskFeed | None = None  # tasks still arriving (see :mod:`.feed`)
        self._fed = 0

    # ------------------------------------------------------------------ the queue

    def add(self, tasks: Iterable[Task]) -> None:
        """Queue the run's tasks.

        Raises:
            ValueError: two tasks share a key.
        """
        for task in tasks:
            if task.key in self._attempts:
                raise ValueError(f"duplicate task key {task.key!r}")
            self._attempts[task.key] = 0
            if self.report.write_error is not None:  # fed after a write error: never handed out
                self.report.not_run.append(task.key)
                continue
            self.push(task)

    def take_fed(self) -> None:
        """Queue the tasks that arrived on the feed since the last call."""
        if self.feed is not None:
            tasks = self.feed.take()
            self._fed += len(tasks)
            self.add(tasks)

    @property
    def more_coming(self) -> bool:
        """True while the feed may still bring tasks (not after a write error: the run then ends
        once the tasks begun are finished, and the feed is cancelled)."""
        return self.feed is not None and not self.feed.exhausted and self.report.write_error is None

    def workers_wanted(self) -> int:
        """How many workers the queued tasks, and those the feed still expects, can keep busy."""
        wanted = self.pending
        if self.more_coming:
            assert self.feed is not None
            expected = self.feed.expected
            wanted = max(wanted, len(self.slots) if expected is None else expected - self._fed + self.pending)
        return wanted

    def push(self, task: Task) -> None:
        """Queue a task (again); the lowest ``Task.rank`` comes out first, then the costliest
        (``Task.order_cost``, by default its size), ties in the order first queued: a task queued again keeps its place, so a retry is
        not pushed behind newer work (nor left to fail again as the second task of every restart)."""
        seq = self._first_seq.setdefault(task.key, self._seq)
        heapq.heappush(self._heap, (task.rank, -task.order_cost, seq, task))
        self._seq += 1

    def pop(self) -> Task:
        """Take the largest pending task."""
        return heapq.heappop(self._heap)[3]

    def pop_for(self, slot: Slot) -> Task | None:
        """The largest pending task for ``slot``, preferring another device for a task whose
        device faulted on this slot; None when only such tasks are left and another live
        worker (one that has not faulted on them) can take them."""
        if not self._avoid:
            return self.pop() if self._heap else None
        for entry in sorted(self._heap):
            task = entry[3]
            if self.may_take(slot, task):
                self._heap.remove(entry)
                heapq.heapify(self._heap)
                return task
        return None

    def may_take(self, slot: Slot, task: Task) -> bool:
        """False when ``task``'s device faulted on ``slot`` and another live worker (one that has
        not faulted on it) can take it."""
        avoid = self._avoid.get(task.key)
        if not avoid or slot.worker_id not in avoid:
            return True
        return not any(other is not slot and other.process is not None and not other.retired
                       and other.worker_id not in avoid for other in self.slots)

    @property
    def pending(self) -> int:
        """How many tasks wait to be handed out."""
        return len(self._heap)

    def assign(self, slot: Slot, task: Task) -> None:
        """Record that ``task`` was sent to ``slot`` (the attempt counts once it begins)."""
        if not slot.begun:
            slot.last_heard = time.monotonic()
        slot.tasks.append(task)

    def requeue_unbegun(self, task: Task) -> None:
        """Queue again, uncharged, a task a worker was sent but never began (after a write
        error it is not run: ``report.not_run``)."""
        if self.report.write_error is not None:
            self.report.not_run.append(task.key)
        else:
            self.push(task)

    def requeue_begun(self, slot: Slot, task: Task) -> None:
        """Queue again, uncharged and for another device, a task whose worker was given up while
        running it (the device broke, not the task)."""
        self._attempts[task.key] -= 1
        self._avoid.setdefault(task.key, set()).add(slot.worker_id)
        self.emit(TaskFailed(slot.worker_id, task.key, "worker given up", self._attempts[task.key] + 1, True))
        self.requeue_unbegun(task)

    def emit(self, event: Event) -> None:
        """Pass a public event to ``on_event``."""
        if self._on_event is None:
            return
        try:
            self._on_event(event)
        except Exception:  # noqa: BLE001 - a broken dashboard must not stop the run
            logger.debug("on_event callback failed for %r", event, exc_info=True)

    # ------------------------------------------------------------------ outcomes

    def task_failed(self, slot: Slot, task: Task, error: str, write_error: str | None = None) -> None:
        """An attempt at ``task`` on ``slot`` failed: retry it, give up on it, or stop after a write error."""
        if write_error is not None:
            self._stop_after_write_error(slot, task, error, write_error)
            return
        attempt = self._attempts[task.key]
        will_retry = attempt <= self.settings.max_task_retries
        level = logging.WARNING if will_retry else logging.ERROR
        logger.log(level, "task %s failed on %s (attempt %d%s): %s", task.key, slot.device, attempt,
                   ", will retry" if will_retry else ", giving up", error.splitlines()[0] if error else error)
        self.emit(TaskFailed(slot.worker_id, task.key, error, attempt, will_retry))
        if will_retry:
            self.push(task)
        else:
            self.report.failed[task.key] = error

    def device_fault(self, slot: Slot, task: Task, error: str) -> None:
        """``task`` hit a sticky device error on ``slot``: re-queue it uncharged, for another device.

        The worker exits by itself; the slot takes no new task meanwhile and is
        restarted by the usual rules when its process is gone.
        """
        self._attempts[task.key] -= 1
        self._avoid.setdefault(task.key, set()).add(slot.worker_id)
        slot.ready = False
        slot.device_fault = error.splitlines()[0] if error else "device error"
        logger.error("%s hit a device error on %s; the worker exits and is restarted, %s is re-queued "
                     "(attempt not counted): %s", slot.label, task.key, task.key, slot.device_fault)
        self.emit(TaskFailed(slot.worker_id, task.key, error, self._attempts[task.key] + 1, True))
        self.push(task)

    def _stop_after_write_error(self, slot: Slot, task: Task, error: str, write_error: str) -> None:
        """No retry, no new tasks: the next write would fail the same way (disk full, read-only...)."""
        logger.debug("task %s could not write its output: %s", task.key, error)
        self.emit(TaskFailed(slot.worker_id, task.key, error, self._attempts[task.key], False))
        self.report.failed[task.key] = error
        if self.report.write_error is None:
            self.report.write_error = write_error
        while self._heap:
            self.report.not_run.append(self.pop().key)

    def fail_remaining(self) -> None:
        """No worker is left: every pending task fails, naming why the workers were given up."""
        why = "; ".join(f"{k}: {v}" for k, v in self.report.worker_errors.items()) or "no worker could start"
        while self._heap:
            self.report.failed[self.pop().key] = f"no worker left to run it ({why})"
        logger.error("no worker left; %d task(s) not run", len(self.report.failed))

    # ------------------------------------------------------------------ worker messages

    def handle(self, slot: Slot, message: FromWorker) -> None:
        """Act on one message from the worker of ``slot`` (the same messages in both modes)."""
        match message:
            case ForwardedLog(logger_name=name, levelno=levelno, text=text):
                record = logging.makeLogRecord(
                    {"name": name, "levelno": levelno, "levelname": logging.getLevelName(levelno),
                     "msg": f"[{worker_name(slot.worker_id, slot.device)}] {text}", "processName": f"worker-{slot.worker_id}"}
                )
                logging.getLogger(name).handle(record)
            case WorkerReady(pid=pid, init_seconds=seconds, info=info):
                slot.ready = True
                logger.debug("%s ready after %.1f s (pid %s)", slot.label, seconds, pid)
                self.emit(WorkerStarted(slot.worker_id, slot.device, pid, seconds, dict(info)))
            case TaskBegun(task_key=key):
                task = next((t for t in slot.tasks if t.key == key), None)
                if task is not None:
                    slot.begun.add(key)
                    slot.withdrawing.discard(key)
                    self._attempts[key] += 1
                    self.emit(TaskStarted(slot.worker_id, slot.device, task.key, task.size,
                                          self._attempts[task.key]))
            case TaskWithdrawn(task_key=key):
                task = slot.take(key)
                if task is not None:
                    logger.debug("%s gave back %s", slot.label, key)
                    self.requeue_unbegun(task)
            case FramesDone(task_key=key, frames=frames):
                self.emit(Progress(slot.worker_id, key, frames))
            case TaskDone(task_key=key, result=result, seconds=seconds):
                slot.take(key)
                self.report.finished[key] = result
                logger.debug("task %s finished on %s in %.1f s", key, slot.device, seconds)
                self.emit(TaskFinished(slot.worker_id, key, result, seconds))
            case TaskRaised(task_key=key, error=error, trace=trace, write_error=write_error,
                            device_fault=device_fault):
                task = slot.take(key)
                logger.debug("task %s raised on %s:\n%s", key, slot.device, trace)
                if task is not None and device_fault:
                    self.device_fault(slot, task, error)
                elif task is not None:
                    self.task_failed(slot, task, error, write_error)
            case WorkerInitFailed(error=error, trace=trace):
                logger.error("%s could not start: %s", slot.label, error)
                logger.debug("%s init traceback:\n%s", slot.label, trace)
                # A raising init_fn (bad model file, no memory on that GPU) would raise again: no restart.
                slot.retired = True
                self.report.worker_errors[slot.label] = error
                self.emit(WorkerDied(slot.worker_id, slot.device, None, None, error, False))
            case _:
                logger.debug("ignoring an unknown message from %s: %r", slot.label, message)


def run_in_process(scheduler: Scheduler) -> None:
    """Run every pending task in this process on the scheduler's only slot (no crash recovery).

    ``prefetch`` does not apply: ``prefetch_fn`` (if any) and a deferred write run in turn.

    Raises:
        RunInterrupted: SIGINT/SIGTERM (raised at once, from inside the running task).
    """
    slot = scheduler.slots[0]
    settings = scheduler.settings
    with StopSignals(raise_at_once=True):
        init_fn = resolve_callable(settings.init_spec)
        process_fn = resolve_callable(settings.process_spec)
        prefetch_fn = resolve_callable(settings.prefetch_spec) if settings.prefetch_spec else None
        started = time.monotonic()
        try:
            state = init_fn(slot.device, settings.init_args)
        except Exception as exc:  # noqa: BLE001 - same outcome as a worker whose init failed
            scheduler.handle(slot, WorkerInitFailed(f"{type(exc).__name__}: {exc}", traceback.format_exc()))
            scheduler.fail_remaining()
            return
        scheduler.handle(slot, WorkerReady(os.getpid(), time.monotonic() - started, worker_info(state)))

        def send(message: FromWorker) -> None:
            scheduler.handle(slot, message)

        while True:
            scheduler.take_fed()
            if not scheduler.pending:
                if not scheduler.more_coming:
                    break
                assert scheduler.feed is not None
                scheduler.feed.wait(settings.poll_interval)
                continue
            task = scheduler.pop()
            scheduler.assign(slot, task)
            prepare = functools.partial(prefetch_fn, state, task) if prefetch_fn is not None else None
            try:
                run_task(process_fn, state, task, send, settings.progress_interval, lambda: False, prepare=prepare)
            except DeviceFault as fault:
                # No process to restart here: the device is given up and the rest fails, naming why.
                slot.retired = True
                scheduler.report.worker_errors[slot.label] = f"device error: {fault}"
                scheduler.emit(WorkerDied(slot.worker_id, slot.device, None, None, f"device error: {fault}", False))
                scheduler.fail_remaining()
                return
