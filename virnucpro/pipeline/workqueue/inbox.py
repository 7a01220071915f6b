"""The threads inside a worker process that let it hold more than one task (``prefetch``).

- :class:`Inbox` reads the worker's pipe on a thread: tasks go into a local
  FIFO, :class:`~virnucpro.pipeline.workqueue.messages.CancelTask` takes a task out
  of it if it has not begun, and :class:`~virnucpro.pipeline.workqueue.messages.StopWorker`
  (or the pipe closing) sets :attr:`Inbox.stopped`, which the progress callback
  checks, so a busy worker stops promptly whatever else it was sent.
- :class:`Prefetcher` runs the optional ``prefetch_fn(state, task)`` for the next
  queued task on a thread while the current task computes (one at a time).
- :class:`BackgroundWriter` runs a task's deferred write
  (:class:`~virnucpro.pipeline.workqueue.tasks.DeferredResult`) on a thread while the
  next task computes; it takes a new write only after the previous one ended, so a
  worker holds at most one shard being written, one computing and one prefetched.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from virnucpro.pipeline.workqueue.messages import CancelTask, FromWorker, RunTask, TaskWithdrawn
from virnucpro.pipeline.workqueue.tasks import Task


class Inbox:
    """The worker's side of its pipe, read on a daemon thread.

    Args:
        conn: the worker's end of the pipe.
        send: sends a message to the parent (thread-safe).
        on_change: called (on the reader thread) after a task arrived or was withdrawn.
    """

    def __init__(self, conn: Connection, send: Callable[[FromWorker], None],
                 on_change: Callable[[], None] | None = None) -> None:
        self._conn = conn
        self._send = send
        self._on_change = on_change
        self._tasks: deque[Task] = deque()
        self._cond = threading.Condition()
        self.stopped = threading.Event()
        self._thread = threading.Thread(target=self._read, name="virnucpro-inbox", daemon=True)

    def start(self) -> None:
        """Start reading the pipe."""
        self._thread.start()

    def _read(self) -> None:
        while True:
            try:
                message = self._conn.recv()
            except (EOFError, OSError):
                message = None  # the parent is gone: stop
            if isinstance(message, RunTask):
                with self._cond:
                    self._tasks.append(message.task)
                    self._cond.notify_all()
            elif isinstance(message, CancelTask):
                with self._cond:
                    found = next((t for t in self._tasks if t.key == message.task_key), None)
                    if found is not None:
                        self._tasks.remove(found)
                if found is None:
                    continue  # it has begun: it runs to its end
                try:
                    self._send(TaskWithdrawn(found.key))
                except (OSError, ValueError):
                    pass
            else:  # StopWorker or EOF
                with self._cond:
                    self.stopped.set()
                    self._cond.notify_all()
                return
            if self._on_change is not None:
                self._on_change()

    def next_task(self) -> Task | None:
        """Wait for the next task and take it; None once the worker is asked to stop."""
        with self._cond:
            while not self._tasks and not self.stopped.is_set():
                self._cond.wait(timeout=1.0)
            if self.stopped.is_set():
                return None
            return self._tasks.popleft()

    def peek(self) -> Task | None:
        """The task that would be taken next, if one is queued."""
        with self._cond:
            return self._tasks[0] if self._tasks else None


class _Job:
    """One background call: its thread, and its value or error once done."""

    def __init__(self, key: str, fn: Callable[[], Any]) -> None:
        self.key = key
        self.done = threading.Event()
        self._value: Any = None
        self._error: BaseException | None = None
        self._fn = fn
        self.thread = threading.Thread(target=self._run, name=f"virnucpro-prefetch-{key}", daemon=True)

    def _run(self) -> None:
        try:
            self._value = self._fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread by result()
            self._error = exc
        finally:
            self.done.set()

    def result(self) -> Any:
        """Wait for the call; return its value or raise its exception."""
        self.done.wait()
        if self._error is not None:
            raise self._error
        return self._value


class Prefetcher:
    """Prepares the next queued task's inputs (``prefetch_fn(state, task)``) on a thread, one at a time."""

    def __init__(self, prefetch_fn: Callable[[Any, Task], Any], state: Any) -> None:
        self._fn = prefetch_fn
        self._state = state
        self._lock = threading.Lock()
        self._job: _Job | None = None

    def offer(self, task: Task | None) -> None:
        """Start preparing ``task`` unless a preparation is already running or held for it.

        A preparation still running for a withdrawn task is left to finish and
        dropped; ``task`` is then prepared when it is taken.
        """
        if task is None:
            return
        with self._lock:
            job = self._job
            if job is not None and (job.key == task.key or not job.done.is_set()):
                return
            fn = self._fn
            state = self._state
            self._job = _Job(task.key, lambda: fn(state, task))
            self._job.thread.start()

    def take(self, task: Task) -> Callable[[], Any]:
        """A function returning ``task``'s prepared inputs: from the background preparation if one
        was made for it (raising its error), else prepared there and then."""
        with self._lock:
            job = self._job
            if job is not None and job.key == task.key:
                self._job = None
                return job.result
            if job is not None and job.done.is_set():
                self._job = None  # made for a task that was withdrawn
        fn, state = self._fn, self._state
        return lambda: fn(state, task)


class BackgroundWriter:
    """Runs one deferred write at a time on a thread."""

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None

    def submit(self, write: Callable[[], None]) -> None:
        """Wait for the previous write to end, then start ``write`` (it reports the task itself)."""
        self.wait()
        self._thread = threading.Thread(target=write, name="virnucpro-writer", daemon=True)
        self._thread.start()

    def wait(self) -> None:
        """Wait for the running write, if any, to end."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
