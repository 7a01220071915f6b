"""The worker side of the work queue: what runs inside each spawned worker process.

:func:`worker_main` is the entry point of a worker: it ignores SIGINT (the
parent decides), asks Linux to kill it when the parent dies, sets its
environment and CPU threads, forwards its ``virnucpro`` log records to the
parent, runs ``init_fn`` once and then one task per :class:`RunTask` message
until it gets :class:`StopWorker` or the pipe closes. :func:`run_task` is
shared with ``in_process`` mode. Internal to the work queue except
:func:`resolve_callable` and :func:`default_cpu_threads`, which
:mod:`virnucpro.pipeline.work_queue` re-exports.
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from virnucpro.errors import OutputError
from virnucpro.pipeline.work_messages import (
    ForwardedLog,
    FramesDone,
    FromWorker,
    RunTask,
    TaskBegun,
    TaskDone,
    TaskRaised,
    WorkerInitFailed,
    WorkerReady,
)
from virnucpro.pipeline.work_types import Task

WorkerFn = Callable[..., Any] | str
Send = Callable[[FromWorker], None]


# --------------------------------------------------------------------------- worker functions


def resolve_callable(spec: WorkerFn) -> Callable[..., Any]:
    """Turn ``"pkg.mod:func"`` (or ``"pkg.mod.func"``) into the function; callables pass through."""
    if callable(spec):
        return spec
    module_name, sep, attr = spec.partition(":")
    if not sep:
        module_name, _, attr = spec.rpartition(".")
    if not module_name or not attr:
        raise ValueError(f"not a function reference: {spec!r} (use 'package.module:function')")
    target: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        target = getattr(target, part)
    return target


def callable_spec(fn: WorkerFn) -> str:
    """A string a spawned child can import; refuses lambdas and nested functions early."""
    if isinstance(fn, str):
        resolve_callable(fn)
        return fn
    qualname = getattr(fn, "__qualname__", "")
    module = getattr(fn, "__module__", None)
    if not module or not qualname or "<" in qualname:
        raise ValueError(f"worker function {fn!r} must be a module-level function (spawned workers import it)")
    return f"{module}:{qualname}"


# --------------------------------------------------------------------------- one task


class StopRequested(BaseException):
    """Raised inside a worker's progress callback when the parent asks it to stop.

    A BaseException so that a ``process_fn`` catching ``Exception`` cannot swallow it.
    """


class ProgressReporter:
    """The ``progress`` callable given to ``process_fn``: coalesces increments, sends at most every ``interval`` s."""

    def __init__(self, send: Send, task_key: str, interval: float, stop_requested: Callable[[], bool]) -> None:
        self._send = send
        self._key = task_key
        self._interval = interval
        self._stop_requested = stop_requested
        self._pending = 0
        self._last = time.monotonic()

    def __call__(self, frames: int) -> None:
        self._pending += int(frames)
        now = time.monotonic()
        if now - self._last >= self._interval:
            self.flush()
            self._last = now
            if self._stop_requested():
                raise StopRequested()

    def flush(self) -> None:
        """Send the frames counted since the last message, if any."""
        if self._pending:
            self._send(FramesDone(self._key, self._pending))
            self._pending = 0


def run_task(process_fn: Callable[..., Any], state: Any, task: Task, send: Send,
             progress_interval: float, stop_requested: Callable[[], bool]) -> None:
    """Run one task and report :class:`TaskDone` or :class:`TaskRaised` through ``send`` (both modes).

    Raises:
        StopRequested: the parent asked the worker to stop (from the progress callback).
    """
    started = time.monotonic()
    send(TaskBegun(task.key))
    reporter = ProgressReporter(send, task.key, progress_interval, stop_requested)
    try:
        result = process_fn(state, task, reporter)
        reporter.flush()
        result = {} if result is None else dict(result)
    except StopRequested:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure of user code is reported, the worker lives on
        write_error = str(exc) if isinstance(exc, OutputError) else None
        send(TaskRaised(task.key, f"{type(exc).__name__}: {exc}", traceback.format_exc(), write_error))
        return
    try:
        send(TaskDone(task.key, result, time.monotonic() - started))
    except Exception as exc:  # noqa: BLE001 - e.g. an unpicklable result
        send(TaskRaised(task.key, f"result could not be sent: {type(exc).__name__}: {exc}",
                        traceback.format_exc(), None))


# --------------------------------------------------------------------------- process setup


class PipeLogHandler(logging.Handler):
    """Forwards a worker's ``virnucpro`` log records to the parent, which re-emits them."""

    def __init__(self, send: Send) -> None:
        super().__init__(logging.DEBUG)
        self._send = send

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip()
            self._send(ForwardedLog(record.name, record.levelno, message))
        except Exception:  # noqa: BLE001 - logging must never kill a worker
            pass


def die_with_parent(parent_pid: int) -> None:
    """Ask Linux to SIGKILL this process when the parent dies (no orphan holding a GPU)."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except Exception:  # noqa: BLE001 - best effort; EOF on the pipe also stops the worker
            pass
    if os.getppid() != parent_pid:
        os._exit(0)


def cuda_ordinal(device: str) -> int | None:
    """The CUDA device number of ``"cuda"`` / ``"cuda:N"``; None for other devices."""
    if device == "cuda":
        return 0
    if device.startswith("cuda:"):
        return int(device.split(":", 1)[1])
    return None


def default_cpu_threads(n_cpu_workers: int) -> int:
    """Cores available to this process divided between ``n_cpu_workers`` (at least 1)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, cores // max(1, n_cpu_workers))


def _set_thread_env(cpu_threads: int | None) -> None:
    if cpu_threads:
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[name] = str(cpu_threads)


def _load(device: str, init_spec: str, process_spec: str, init_args: dict[str, Any],
          cpu_threads: int | None) -> tuple[Callable[..., Any], Any]:
    """Import the worker functions, select the CUDA device, run ``init_fn``; returns ``(process_fn, state)``."""
    init_fn = resolve_callable(init_spec)
    process_fn = resolve_callable(process_spec)
    ordinal = cuda_ordinal(device)
    if ordinal is not None:
        import torch

        torch.cuda.set_device(ordinal)
    state = init_fn(device, init_args)
    if cpu_threads and "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(cpu_threads)
    return process_fn, state


# --------------------------------------------------------------------------- entry point


def worker_main(worker_id: int, device: str, init_spec: str, process_spec: str, init_args: dict[str, Any],
                conn: Connection, parent_pid: int, cpu_threads: int | None, env: dict[str, str],
                progress_interval: float) -> None:
    """Entry point of a spawned worker process (``worker_id`` names the process in the parent's logs)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(parent_pid)
    os.environ.update(env)
    _set_thread_env(cpu_threads)

    send_lock = threading.Lock()

    def send(message: FromWorker) -> None:
        with send_lock:
            conn.send(message)

    package_logger = logging.getLogger("virnucpro")
    package_logger.handlers[:] = [PipeLogHandler(send)]
    package_logger.setLevel(logging.DEBUG)
    package_logger.propagate = False

    started = time.monotonic()
    try:
        process_fn, state = _load(device, init_spec, process_spec, init_args, cpu_threads)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, then this worker exits
        send(WorkerInitFailed(f"{type(exc).__name__}: {exc}", traceback.format_exc()))
        conn.close()
        sys.exit(1)
    send(WorkerReady(os.getpid(), time.monotonic() - started))

    def stop_requested() -> bool:
        return conn.poll()  # a busy worker is only ever sent StopWorker

    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if not isinstance(message, RunTask):  # StopWorker
            return
        try:
            run_task(process_fn, state, message.task, send, progress_interval, stop_requested)
        except (StopRequested, BrokenPipeError, EOFError):
            return
