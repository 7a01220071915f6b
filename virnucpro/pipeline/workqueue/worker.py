"""The worker side of the work queue: what runs inside each spawned worker process.

:func:`worker_main` is the entry point of a worker: it ignores SIGINT (the
parent decides), asks Linux to kill it when the parent dies, sets its
environment and CPU threads, forwards its ``virnucpro`` log records to the
parent, runs ``init_fn`` once and then the tasks it is sent, in the order
sent, until it gets :class:`StopWorker` or the pipe closes. Its pipe is read
on a thread (:class:`~virnucpro.pipeline.workqueue.inbox.Inbox`), so a stop reaches
a busy worker whatever else it holds. :func:`run_task` is shared with
``in_process`` mode.

Pipelining (``prefetch`` > 0): the parent may send a task while another runs.
The worker then prepares its inputs on a thread (the optional
``prefetch_fn(state, task)``; its value is passed to
``process_fn(state, task, progress, prepared)``), and when ``process_fn``
returns a :class:`~virnucpro.pipeline.workqueue.tasks.DeferredResult` its
``finish()`` (the write) runs on a writer thread while the next task
computes; :class:`TaskDone` is sent only after ``finish()`` returned. Before
exiting (stop, device fault) the worker waits for that write.

Device faults: a task that raises a *sticky* device error (one that leaves the
CUDA context unusable: illegal memory access, device-side assert, launch
failure, ECC error; see :func:`is_sticky_device_error`; out-of-memory is never
sticky) is reported with ``device_fault=True`` and the worker process then
exits with :data:`EXIT_DEVICE_FAULT`: every later call in that context would
fail in milliseconds and burn the retries of healthy tasks.

Fault hooks for tests and the acceptance script (read from the environment
each worker inherits; ``IDS`` is a comma-separated list of worker ids):

- ``VIRNUCPRO_FAULT_DEVICE_ERROR=ID[:N][,ID[:N]]``: those workers raise a simulated
  sticky CUDA error (``RuntimeError: CUDA error: an illegal memory access was
  encountered``) on every task from their process's N-th on (N = 2 when not given:
  a worker that first proved healthy; N = 1: a device broken from the start);
- ``VIRNUCPRO_FAULT_INIT_SLEEP=ID:SECONDS[,ID:SECONDS]``: those workers sleep
  before ``init_fn`` (a model load that hangs). Internal to the work queue except
:func:`resolve_callable` and :func:`default_cpu_threads`, which
:mod:`virnucpro.pipeline.workqueue.manager` re-exports.
"""

from __future__ import annotations

import functools
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
from virnucpro.pipeline.workqueue.inbox import BackgroundWriter, Inbox, Prefetcher
from virnucpro.pipeline.workqueue.messages import (
    ForwardedLog,
    FramesDone,
    FromWorker,
    TaskBegun,
    TaskDone,
    TaskRaised,
    WorkerInitFailed,
    WorkerReady,
)
from virnucpro.pipeline.workqueue.tasks import DeferredResult, Task

WorkerFn = Callable[..., Any] | str
Send = Callable[[FromWorker], None]

EXIT_DEVICE_FAULT = 75
"""Exit status of a worker that left after a sticky device error."""

FAULT_DEVICE_ERROR_ENV = "VIRNUCPRO_FAULT_DEVICE_ERROR"
FAULT_INIT_SLEEP_ENV = "VIRNUCPRO_FAULT_INIT_SLEEP"
SIMULATED_DEVICE_ERROR = (
    "CUDA error: an illegal memory access was encountered "
    f"(simulated by {FAULT_DEVICE_ERROR_ENV})"
)

# Lower-case fragments of the CUDA / driver messages after which a context is unusable for good.
STICKY_ERROR_PATTERNS = (
    "illegal memory access",
    "an illegal instruction",
    "misaligned address",
    "device-side assert",
    "unspecified launch failure",
    "launch failure",
    "ecc error",
    "uncorrectable ecc",
    "cuda error: unknown error",
    "gpu has fallen off the bus",
    "cublas_status_execution_failed",  # a cuBLAS kernel failed on the device: the context is gone
    "launch timed out",  # the watchdog killed a kernel ("the launch timed out and was terminated")
)


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


# --------------------------------------------------------------------------- device faults


def is_sticky_device_error(exc: BaseException) -> bool:
    """True for an error that leaves the process's CUDA context unusable (never for out-of-memory).

    Matches the CUDA runtime's messages (``CUDA error: an illegal memory
    access was encountered``, ``device-side assert triggered``, ``unspecified
    launch failure``, ``uncorrectable ECC error encountered``...) in the
    exception and its causes; ``torch.AcceleratorError`` (newer torch) counts
    the same way.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        names = {cls.__name__ for cls in type(current).__mro__}
        text = str(current).lower()
        if "OutOfMemoryError" in names or "out of memory" in text:
            return False
        if any(pattern in text for pattern in STICKY_ERROR_PATTERNS):
            return True
        if "AcceleratorError" in names:
            return True
        current = current.__cause__ or current.__context__
    return False


class DeviceFault(BaseException):
    """Raised by :func:`run_task` after it reported a sticky device error: the worker must exit."""


def _fault_from(value: str | None) -> dict[int, int]:
    """``{worker id: first faulty task}`` from a ``VIRNUCPRO_FAULT_DEVICE_ERROR`` value."""
    first: dict[int, int] = {}
    for part in (value or "").split(","):
        wid, _, n = part.strip().partition(":")
        if wid.isdigit():
            first[int(wid)] = int(n) if n.isdigit() and int(n) > 0 else 2
    return first


def injected_init_sleep(worker_id: int) -> float:
    """Seconds ``VIRNUCPRO_FAULT_INIT_SLEEP`` asks worker ``worker_id`` to sleep before ``init_fn``."""
    for part in os.environ.get(FAULT_INIT_SLEEP_ENV, "").split(","):
        wid, sep, seconds = part.strip().partition(":")
        if sep and wid.isdigit() and int(wid) == worker_id:
            return float(seconds)
    return 0.0


def with_injected_device_fault(process_fn: Callable[..., Any], worker_id: int) -> Callable[..., Any]:
    """``process_fn``, or a wrapper raising :data:`SIMULATED_DEVICE_ERROR` from the N-th task on
    when ``VIRNUCPRO_FAULT_DEVICE_ERROR`` names ``worker_id`` (see the module docstring)."""
    first_faulty = _fault_from(os.environ.get(FAULT_DEVICE_ERROR_ENV)).get(worker_id)
    if first_faulty is None:
        return process_fn
    calls = 0

    def faulty(state: Any, task: Task, progress: Callable[[int], None], *prepared: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls >= first_faulty:
            raise RuntimeError(SIMULATED_DEVICE_ERROR)
        return process_fn(state, task, progress, *prepared)

    return faulty


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


def _raised(task: Task, exc: Exception, device_errors: bool = True) -> TaskRaised:
    write_error = str(exc) if isinstance(exc, OutputError) else None
    sticky = device_errors and write_error is None and is_sticky_device_error(exc)
    return TaskRaised(task.key, f"{type(exc).__name__}: {exc}", traceback.format_exc(), write_error, sticky)


def _send_done(send: Send, task: Task, result: dict[str, Any] | None, started: float) -> None:
    try:
        send(TaskDone(task.key, {} if result is None else dict(result), time.monotonic() - started))
    except (BrokenPipeError, EOFError):
        raise
    except Exception as exc:  # noqa: BLE001 - e.g. an unpicklable result
        send(TaskRaised(task.key, f"result could not be sent: {type(exc).__name__}: {exc}",
                        traceback.format_exc(), None))


def _finish_in_background(deferred: DeferredResult, task: Task, send: Send, started: float) -> None:
    """The writer thread's job: finish the task's outputs, then report it done (or raised)."""
    try:
        try:
            result = deferred.finish()
        except Exception as exc:  # noqa: BLE001 - reported like an error of process_fn
            send(_raised(task, exc, device_errors=False))
            return
        _send_done(send, task, result, started)
    except (OSError, EOFError, ValueError):
        pass  # the parent is gone or stopped listening; the file is complete either way


def run_task(process_fn: Callable[..., Any], state: Any, task: Task, send: Send,
             progress_interval: float, stop_requested: Callable[[], bool], *,
             prepare: Callable[[], Any] | None = None, writer: BackgroundWriter | None = None) -> None:
    """Run one task and report :class:`TaskDone` or :class:`TaskRaised` through ``send`` (both modes).

    ``prepare``: returns the task's prepared inputs (``prefetch_fn``'s value), passed to
    ``process_fn`` as a fourth argument; None: ``process_fn`` gets three. ``writer``: where a
    :class:`DeferredResult`'s ``finish`` runs (it then reports the task); None: at once, here.

    Raises:
        StopRequested: the parent asked the worker to stop (from the progress callback).
        DeviceFault: the task hit a sticky device error (already reported with ``device_fault=True``).
    """
    started = time.monotonic()
    send(TaskBegun(task.key))
    reporter = ProgressReporter(send, task.key, progress_interval, stop_requested)
    try:
        if prepare is None:
            result = process_fn(state, task, reporter)
        else:
            result = process_fn(state, task, reporter, prepare())
        reporter.flush()
        if isinstance(result, DeferredResult):
            if writer is not None:
                deferred = result
                writer.submit(lambda: _finish_in_background(deferred, task, send, started))
                return
            result = result.finish()
    except StopRequested:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure of user code is reported, the worker lives on
        raised = _raised(task, exc)
        send(raised)
        if raised.device_fault:
            raise DeviceFault(str(exc)) from exc
        return
    _send_done(send, task, result, started)


def worker_info(state: Any) -> dict[str, Any]:
    """What ``init_fn``'s state asks to be reported with :class:`WorkerReady`: its ``worker_info``
    attribute when that is a dict (picklable values), else nothing."""
    info = getattr(state, "worker_info", None)
    return dict(info) if isinstance(info, dict) else {}


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


def worker_visible_devices(device: str, parent_visible: str | None) -> str | None:
    """The ``CUDA_VISIBLE_DEVICES`` of the worker of ``device``: its one GPU; None for non-CUDA devices.

    ``cuda:N`` is the user's ordinal, i.e. the N-th entry of the parent's
    ``CUDA_VISIBLE_DEVICES`` when that is set (an index, UUID or MIG name is
    passed on as written), else N itself. Inside the worker that GPU is ``cuda:0``.
    """
    ordinal = cuda_ordinal(device)
    if ordinal is None:
        return None
    if parent_visible is not None and parent_visible.strip():
        entries = [e.strip() for e in parent_visible.split(",") if e.strip()]
        if ordinal < len(entries):
            return entries[ordinal]
    return str(ordinal)


def local_device(device: str) -> str:
    """The device name ``init_fn`` gets inside a worker: ``"cuda:0"`` for any CUDA device (only one is visible)."""
    return "cuda:0" if cuda_ordinal(device) is not None else device


def default_cpu_threads(n_cpu_workers: int) -> int:
    """Cores available to this process divided between ``n_cpu_workers`` (at least 1)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, cores // max(1, n_cpu_workers))


def _set_thread_env(cpu_threads: int | None) -> None:
    """OpenMP/MKL threads and Inductor's compile pool sized to this worker's share of the cores
    (a compile pool is one process per core by default: eight workers' pools and the parent's
    translate thread would fight over the same cores)."""
    if cpu_threads:
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[name] = str(cpu_threads)
        os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", str(cpu_threads))  # a caller's choice wins


def _load(device: str, init_spec: str, process_spec: str, init_args: dict[str, Any],
          cpu_threads: int | None) -> tuple[Callable[..., Any], Any]:
    """Import the worker functions, select the (only visible) CUDA device, run ``init_fn``;
    returns ``(process_fn, state)``."""
    init_fn = resolve_callable(init_spec)
    process_fn = resolve_callable(process_spec)
    if cuda_ordinal(device) is not None:
        import torch

        if torch.cuda.is_available():
            torch.cuda.set_device(0)
    state = init_fn(device, init_args)
    if cpu_threads and "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(cpu_threads)
    return process_fn, state


# --------------------------------------------------------------------------- entry point


def worker_main(worker_id: int, device: str, init_spec: str, process_spec: str, init_args: dict[str, Any],
                conn: Connection, parent_pid: int, cpu_threads: int | None, env: dict[str, str],
                progress_interval: float, prefetch: int = 0, prefetch_spec: str | None = None) -> None:
    """Entry point of a spawned worker process (``worker_id`` names the process in the parent's logs).

    ``device`` is the user's name (``"cuda:3"``); ``env`` already holds this
    worker's one-GPU ``CUDA_VISIBLE_DEVICES``, so ``init_fn`` is given
    :func:`local_device` (``"cuda:0"``). ``prefetch`` > 0 turns on the background
    preparation (with ``prefetch_spec``) and the background writer.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(parent_pid)
    os.environ.update(env)  # before anything initialises CUDA
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
        pause = injected_init_sleep(worker_id)
        if pause:
            time.sleep(pause)
        prefetch_fn = resolve_callable(prefetch_spec) if prefetch_spec else None
        process_fn, state = _load(local_device(device), init_spec, process_spec, init_args, cpu_threads)
        process_fn = with_injected_device_fault(process_fn, worker_id)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, then this worker exits
        send(WorkerInitFailed(f"{type(exc).__name__}: {exc}", traceback.format_exc()))
        conn.close()
        sys.exit(1)

    prefetcher = Prefetcher(prefetch_fn, state) if prefetch_fn is not None and prefetch > 0 else None
    writer = BackgroundWriter() if prefetch > 0 else None
    inbox: Inbox
    if prefetcher is not None:
        inbox = Inbox(conn, send, lambda: prefetcher.offer(inbox.peek()))
    else:
        inbox = Inbox(conn, send)
    inbox.start()
    send(WorkerReady(os.getpid(), time.monotonic() - started, worker_info(state)))

    try:
        while True:
            task = inbox.next_task()
            if task is None:
                return
            prepare: Callable[[], Any] | None = None
            if prefetcher is not None:
                prepare = prefetcher.take(task)
                prefetcher.offer(inbox.peek())
            elif prefetch_fn is not None:
                prepare = functools.partial(prefetch_fn, state, task)
            try:
                run_task(process_fn, state, task, send, progress_interval, inbox.stopped.is_set,
                         prepare=prepare, writer=writer)
            except DeviceFault:
                if writer is not None:
                    writer.wait()  # host-side work; the shard before the fault is kept
                conn.close()
                sys.exit(EXIT_DEVICE_FAULT)
            except (StopRequested, BrokenPipeError, EOFError):
                return
    finally:
        if writer is not None:
            writer.wait()  # never exit while a feature file is half written (atomic writes make a kill safe)
