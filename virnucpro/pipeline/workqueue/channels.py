"""One running queue shared by several jobs at once: each job has a channel of its own.

A caller with several independent jobs (a many-sample run: one job per sample) runs ONE
:class:`~virnucpro.pipeline.workqueue.manager.BatchQueueManager` over :attr:`SharedFeed.feed`
in the main thread, passing each event to :meth:`SharedFeed.on_event`. Each job, on a
thread of its own, opens a :class:`Channel`, puts its tasks (their keys become
``<channel>/<key>`` on the queue and their rank the channel's, so the tasks of a channel
opened earlier are handed out first) and calls :meth:`Channel.run`: it hands the job its
events in the job's own thread (keys as the job put them) and returns the job's own
:class:`~virnucpro.pipeline.workqueue.tasks.RunReport` once each of its tasks finished or
failed for good. The workers, and what their ``init_fn`` loaded, serve every channel; a
worker finishing one job's last task takes the next job's first.

Worker events go to every open channel. A worker's ``WorkerStarted`` with its real
``init_seconds`` goes to one channel only, the oldest open one (or, when none is, the next
opened); every other channel sees that worker as started after 0 s with
``info={"kept": True}`` (a worker kept from an earlier job). So over all channels
each model load is reported once.

When the queue ends, the caller calls :meth:`SharedFeed.end` with the queue's report or the
exception it raised. Every channel still waiting takes its tasks' outcome from the report
(failed, or not run after a write error); after an exception it raises in its own thread
(:class:`~virnucpro.pipeline.workqueue.tasks.RunInterrupted` again for a stop signal). A
channel whose job had not put all its tasks, or one opened later, fails at once.
"""

from __future__ import annotations

import logging
import select
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from virnucpro.errors import OutputError, ShardsFailedError
from virnucpro.pipeline.workqueue.feed import FeedCancelled, TaskFeed, WakePipe
from virnucpro.pipeline.workqueue.tasks import (
    QUEUE_LOGGER,
    Event,
    RunInterrupted,
    RunReport,
    Task,
    TaskFailed,
    TaskFinished,
    WorkerDied,
    WorkerRestarted,
    WorkerStarted,
)

logger = logging.getLogger(QUEUE_LOGGER)

SEPARATOR = "/"
_WAIT_SECONDS = 1.0  # the longest a channel waits without looking at its source and inbox


@dataclass(frozen=True)
class _End:
    report: RunReport | None
    error: BaseException | None


class SharedFeed:
    """The feed of one queue run shared by :class:`Channel` s (see the module docstring)."""

    def __init__(self) -> None:
        self.feed = TaskFeed()
        self._lock = threading.Lock()
        self._open: list[Channel] = []  # in the order opened
        self._names: set[str] = set()
        self._next_rank = 0
        self._ready: dict[int, WorkerStarted] = {}  # worker id -> its latest ready event
        self._load_reported: set[int] = set()
        self._end: _End | None = None

    def open(self, name: str, rank: int | None = None, on_close: Callable[[], None] | None = None) -> Channel:
        """A new channel named ``name`` (unique, without ``/``).

        Args:
            rank: its tasks' :attr:`Task.rank` (lower: handed out first); None: opening order.
            on_close: called (in the producer's thread) once the channel was closed: every
                task of the job is on the queue.

        Raises:
            ValueError: the name is taken or has a ``/``, or the feed was closed.
        """
        if not name or SEPARATOR in name:
            raise ValueError(f"a channel name must be non-empty and without {SEPARATOR!r}: {name!r}")
        with self._lock:
            if name in self._names:
                raise ValueError(f"channel {name!r} opened twice")
            if self.feed.closed and self._end is None:
                raise ValueError("open() on a closed SharedFeed")
            self._names.add(name)
            channel = Channel(self, name, self._next_rank if rank is None else rank, on_close)
            self._next_rank = max(self._next_rank, channel.rank) + 1
            if self._end is not None:
                channel.deliver(self._end)
                return channel
            self._open.append(channel)
            for worker_id in sorted(self._ready):
                channel.deliver(self._started_for_one(self._ready[worker_id]))
        return channel

    def close(self) -> None:
        """No channel will be opened any more: the queue ends once the open ones' tasks are done."""
        self.feed.close()

    def on_event(self, event: Event) -> None:
        """Pass a queue event to the channel(s) it concerns (call it from the queue's ``on_event``)."""
        if isinstance(event, WorkerStarted):
            with self._lock:
                self._ready[event.worker_id] = event
                self._load_reported.discard(event.worker_id)  # a restarted worker loaded again
                for channel in self._open:
                    channel.deliver(self._started_for_one(event))
            return
        if isinstance(event, (WorkerDied, WorkerRestarted)):
            with self._lock:
                if isinstance(event, WorkerDied):
                    self._ready.pop(event.worker_id, None)
                channels = list(self._open)
            for channel in channels:
                if isinstance(event, WorkerDied) and event.task_key is not None:
                    name, _, local = event.task_key.partition(SEPARATOR)
                    channel.deliver(replace(event, task_key=local if name == channel.name else None))
                else:
                    channel.deliver(event)
            return
        name, _, local = event.task_key.partition(SEPARATOR)
        with self._lock:
            owner = next((channel for channel in self._open if channel.name == name), None)
        if owner is not None:
            owner.deliver(replace(event, task_key=local))

    def end(self, report: RunReport | None, error: BaseException | None = None) -> None:
        """The queue returned ``report`` (or raised ``error``): wake every channel still waiting."""
        end = _End(report, error)
        with self._lock:
            self._end = end
            channels = list(self._open)
        if not self.feed.exhausted:
            self.feed.cancel()
        for channel in channels:
            channel.deliver(end)

    def _started_for_one(self, event: WorkerStarted) -> WorkerStarted:
        """``event`` for the first channel told of this load, a kept worker's for the others (lock held)."""
        if event.worker_id in self._load_reported:
            return WorkerStarted(event.worker_id, event.device, event.pid, 0.0, {"kept": True})
        self._load_reported.add(event.worker_id)
        return event

    def _forget(self, channel: Channel) -> None:
        with self._lock:
            if channel in self._open:
                self._open.remove(channel)


class Channel:
    """One job's share of a :class:`SharedFeed`: its tasks in, its events and report out."""

    def __init__(self, shared: SharedFeed, name: str, rank: int, on_close: Callable[[], None] | None) -> None:
        self.name, self.rank = name, rank
        self.report = RunReport()
        self._shared = shared
        self._on_close = on_close
        self._lock = threading.Lock()
        self._inbox: deque[Event | _End] = deque()
        self._wakeup = WakePipe()
        self._outstanding: set[str] = set()  # keys put and neither finished nor failed for good
        self._put: set[str] = set()
        self._closed = False

    # ------------------------------------------------------------------ the job's side

    def put(self, task: Task) -> None:
        """Queue ``task`` (its key unique within the channel).

        Raises:
            FeedCancelled: the queue stopped.
            ValueError: the channel was closed, or the key was put before.
        """
        with self._lock:
            if self._closed:
                raise ValueError(f"put() on the closed channel {self.name!r}")
            if task.key in self._put:
                raise ValueError(f"duplicate task key {task.key!r} in channel {self.name!r}")
            self._put.add(task.key)
            self._outstanding.add(task.key)
        self._shared.feed.put(replace(task, key=f"{self.name}{SEPARATOR}{task.key}", rank=self.rank))

    def extend(self, tasks: Iterable[Task]) -> None:
        """:meth:`put` each of ``tasks``."""
        for task in tasks:
            self.put(task)

    def close(self) -> None:
        """Every task of the job was put."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._wakeup.wake()
        if self._on_close is not None:
            try:
                self._on_close()
            except Exception:  # noqa: BLE001 - the caller's hook must not stop the job
                logger.debug("on_close of channel %s failed", self.name, exc_info=True)

    @property
    def closed(self) -> bool:
        with self._lock:
            return self._closed

    def run(self, on_event: Callable[[Event], None] | None = None, source: TaskFeed | None = None) -> RunReport:
        """Wait, in this thread, until the channel is closed and each of its tasks finished or failed
        for good; pass its events to ``on_event`` meanwhile (its exceptions are logged, not raised).

        Args:
            source: a feed another thread fills with the job's tasks: they are put as they come,
                the channel is closed once the feed is, and the feed is cancelled if the queue stops.

        Raises:
            RunInterrupted: the queue was stopped by SIGINT/SIGTERM.
            OutputError: the queue stopped after a write error before every task of the job was queued.
            ShardsFailedError: the queue ended, or failed, before every task of the job was queued.
        """
        began = time.monotonic()
        try:
            while True:
                if source is not None and self._pump(source):
                    source = None
                for item in self._take_inbox():
                    if isinstance(item, _End):
                        self._ended(item)
                        return self.report
                    self._handle(item, on_event)
                with self._lock:
                    if self._closed and not self._outstanding:
                        return self.report
                waitables = [self._wakeup.fileno()] + ([source.fileno()] if source is not None else [])
                select.select(waitables, [], [], _WAIT_SECONDS)
        finally:
            self.report.seconds = time.monotonic() - began
            self._shared._forget(self)
            if source is not None and not source.exhausted:
                source.cancel()

    def _pump(self, source: TaskFeed) -> bool:
        """Put what ``source`` holds; True (and the channel closed) once it is closed and empty."""
        try:
            self.extend(source.take())
        except FeedCancelled:
            source.cancel()  # the producer stops; the queue's end says why
            return True
        if source.exhausted:
            self.close()
            return True
        return False

    def _handle(self, event: Event, on_event: Callable[[Event], None] | None) -> None:
        if on_event is not None:
            try:
                on_event(event)
            except Exception:  # noqa: BLE001 - as BatchQueueManager's on_event
                logger.debug("on_event callback failed for %r", event, exc_info=True)
        if isinstance(event, TaskFinished):
            self.report.finished[event.task_key] = event.result
        elif isinstance(event, TaskFailed) and not event.will_retry:
            self.report.failed[event.task_key] = event.error
        else:
            return
        with self._lock:
            self._outstanding.discard(event.task_key)

    def _ended(self, end: _End) -> None:
        """The queue ended before this channel was done: its outstanding tasks take the queue's outcome."""
        if isinstance(end.error, RunInterrupted):
            raise RunInterrupted(end.error.signum)
        if isinstance(end.error, KeyboardInterrupt):
            raise KeyboardInterrupt()
        if end.error is not None:
            raise ShardsFailedError(f"the work queue failed ({type(end.error).__name__}: {end.error}); "
                                    f"{self.name}'s finished tasks are kept")
        queue = end.report or RunReport()
        report = self.report
        report.worker_errors.update(queue.worker_errors)
        report.write_error = queue.write_error
        with self._lock:
            outstanding, self._outstanding = sorted(self._outstanding), set()
            complete = self._closed
        for key in outstanding:
            shared_key = f"{self.name}{SEPARATOR}{key}"
            if shared_key in queue.finished:
                report.finished[key] = queue.finished[shared_key]
            elif shared_key in queue.not_run:
                report.not_run.append(key)
            else:
                report.failed[key] = queue.failed.get(shared_key, "the work queue ended before it ran")
        if complete:
            return
        if queue.write_error is not None:
            raise OutputError(queue.write_error)
        why = "; ".join(f"{k}: {v}" for k, v in queue.worker_errors.items()) or "no worker left"
        raise ShardsFailedError(f"the work queue ended before every task of {self.name} was queued ({why}); "
                                f"its finished tasks are kept, re-run the same command to retry")

    # ------------------------------------------------------------------ the queue's side

    def deliver(self, item: Event | _End) -> None:
        """Hand the channel an event (or the queue's end); thread-safe, never blocks."""
        with self._lock:
            self._inbox.append(item)
        self._wakeup.wake()

    def _take_inbox(self) -> list[Event | _End]:
        self._wakeup.drain()
        with self._lock:
            items = list(self._inbox)
            self._inbox.clear()
        return items
