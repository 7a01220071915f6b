"""Tasks given to a running queue: a producer thread adds them while the workers run.

A :class:`TaskFeed` is what :meth:`BatchQueueManager.run` takes instead of a
task list when the tasks are not all known up front (a stage that makes its
inputs as it goes). The producer calls :meth:`TaskFeed.put` for each task and
:meth:`TaskFeed.close` once it has no more; the queue hands each task out as
soon as it arrives and returns once the feed is closed and every task has
finished or failed. When the queue itself stops early (a stop signal, no
worker left), it calls :meth:`TaskFeed.cancel`: a later ``put`` raises
:class:`FeedCancelled`, so the producer does not go on making work nobody runs.

Thread-safe; the queue waits on :meth:`TaskFeed.fileno` (a pipe that becomes
readable when something arrives), so a new task is handed out at once, not at
the next poll.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable

from virnucpro.pipeline.workqueue.tasks import Task


class FeedCancelled(RuntimeError):
    """The queue reading the feed stopped: no further task will be run."""


class WakePipe:
    """A self-pipe: :meth:`wake` from any thread makes :meth:`fileno` readable until :meth:`drain`,
    so a thread waiting in ``select`` on it notices new work at once, not at its next poll."""

    def __init__(self) -> None:
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._read_fd, False)
        os.set_blocking(self._write_fd, False)

    def wake(self) -> None:
        try:
            os.write(self._write_fd, b"x")
        except (BlockingIOError, OSError):
            pass  # full (the reader is woken anyway) or closed

    def drain(self) -> None:
        """Read every wake-up so far; call it BEFORE looking at what woke you, so a wake-up
        arriving meanwhile stays behind, never a change unnoticed."""
        try:
            while os.read(self._read_fd, 4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def fileno(self) -> int:
        return self._read_fd

    def __del__(self) -> None:
        # Not closed earlier on purpose: another thread may still be writing a wake-up.
        for fd in (getattr(self, "_read_fd", None), getattr(self, "_write_fd", None)):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass


class TaskFeed:
    """A thread-safe stream of tasks with an end.

    Args:
        expected: how many tasks the producer expects to add (a hint for how many
            workers to start before the tasks arrive); None = as many as there are devices.
    """

    def __init__(self, expected: int | None = None) -> None:
        self.expected = expected
        self._lock = threading.Lock()
        self._tasks: list[Task] = []
        self._closed = False
        self._cancelled = False
        self._wakeup = WakePipe()

    # ------------------------------------------------------------------ producer side

    def put(self, task: Task) -> None:
        """Add a task.

        Raises:
            FeedCancelled: the queue stopped reading.
            ValueError: the feed was closed.
        """
        with self._lock:
            if self._cancelled:
                raise FeedCancelled("the work queue stopped")
            if self._closed:
                raise ValueError("put() on a closed TaskFeed")
            self._tasks.append(task)
        self._wakeup.wake()

    def extend(self, tasks: Iterable[Task]) -> None:
        """:meth:`put` each of ``tasks``."""
        for task in tasks:
            self.put(task)

    def close(self) -> None:
        """No more tasks will be added (also after a failure of the producer)."""
        with self._lock:
            self._closed = True
        self._wakeup.wake()

    # ------------------------------------------------------------------ queue side

    def take(self) -> list[Task]:
        """The tasks added since the last call, in the order added."""
        self._wakeup.drain()
        with self._lock:
            tasks, self._tasks = self._tasks, []
        return tasks

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called (tasks may still wait for :meth:`take`)."""
        with self._lock:
            return self._closed

    @property
    def exhausted(self) -> bool:
        """True once the feed is closed and every task was taken."""
        with self._lock:
            return self._closed and not self._tasks

    def cancel(self) -> None:
        """The queue stops reading: later :meth:`put` calls raise :class:`FeedCancelled`."""
        with self._lock:
            self._cancelled = True
            self._tasks = []

    @property
    def cancelled(self) -> bool:
        with self._lock:
            return self._cancelled

    def wait(self, timeout: float) -> None:
        """Block until something arrives, the feed closes or ``timeout`` seconds pass."""
        import select

        if self.exhausted:
            return
        select.select([self._wakeup.fileno()], [], [], timeout)

    def fileno(self) -> int:
        """A file descriptor readable while tasks (or the close) wait to be noticed."""
        return self._wakeup.fileno()
