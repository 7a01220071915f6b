"""Run independent tasks on several devices, one worker process per device, surviving crashes.

The manager knows nothing about models. A stage gives it two importable,
module-level functions (as objects or ``"package.module:function"`` strings):

- ``init_fn(device: str, init_args: dict) -> state`` runs once per worker
  process (load the model here);
- ``process_fn(state, task: Task, progress: Callable[[int], None]) -> dict``
  runs once per task; it calls ``progress(n)`` after every ``n`` frames, writes
  its outputs with :mod:`virnucpro.pipeline.checkpoint` and returns a small
  picklable dict that ends up in :attr:`RunReport.finished`.

How it works: the parent keeps the pending tasks in a heap, largest first,
and hands one task at a time to each idle worker over that worker's own pipe.
Because only the parent hands out work, it always knows which task a worker
holds: when a worker dies (SIGKILL, OOM killer, segfault, ``os._exit``) the
process sentinel fires, the task is re-queued (up to ``max_task_retries``
times) and the worker is restarted (up to ``max_worker_restarts`` times per
device). Per-worker pipes, rather than one shared queue, mean a worker killed
mid-write can never corrupt or deadlock the other workers' channel.

Devices and threads: workers are started with the ``spawn`` method and the
parent never touches CUDA. A ``"cuda:N"`` worker keeps the parent's
``CUDA_VISIBLE_DEVICES`` (so ``N`` is the ordinal the user sees in logs and in
``nvidia-smi`` order given ``CUDA_DEVICE_ORDER``) and calls
``torch.cuda.set_device(N)`` before ``init_fn``, so stray default-device
allocations do not land on GPU 0. ``"cpu"`` workers share the machine's
cores: each gets ``OMP_NUM_THREADS`` and ``torch.set_num_threads`` set to
``cores // number_of_cpu_workers``.

Signals: while :meth:`BatchQueueManager.run` runs in the main thread, SIGINT
and SIGTERM stop the hand-out, ask workers to stop at their next progress
call, terminate (then kill) them after ``stop_timeout`` seconds and raise
:class:`RunInterrupted` (a ``KeyboardInterrupt``, so the CLI exits 130).
Workers ignore SIGINT (the parent decides) and die with the parent
(``PR_SET_PDEATHSIG`` on Linux), so no worker outlives a killed run.

``in_process=True`` runs the same functions in the calling process with the
same events and retry rules (no crash recovery, obviously); use it for one
device without parallelism or for debugging.

Write failures: a task that raises :class:`~virnucpro.errors.OutputError`
(disk full, permission denied, read-only filesystem) is not retried and no
further task is handed out; tasks already running finish, and
:meth:`RunReport.raise_for_failures` raises that ``OutputError`` (one line,
exit 1) instead of :class:`ShardsFailedError`. Retrying would only recompute a
shard to fail the same write again.
"""

from __future__ import annotations

import heapq
import importlib
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.connection import wait as wait_for_ready
from typing import Any

from virnucpro.errors import OutputError, ShardsFailedError

logger = logging.getLogger(__name__)

WorkerFn = Callable[..., Any] | str


# --------------------------------------------------------------------------- tasks and events


@dataclass(frozen=True)
class Task:
    """One unit of work.

    Attributes:
        key: unique name, e.g. ``"shard-00012:esm"``.
        size: number of frames; larger tasks are handed out first and it is
            the total the dashboard shows for the task.
        payload: picklable arguments for ``process_fn`` (input path, output path...).
    """

    key: str
    size: int
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class WorkerStarted:
    """A worker finished ``init_fn`` and is ready for tasks."""

    worker_id: int
    device: str
    pid: int | None
    init_seconds: float


@dataclass(frozen=True)
class TaskStarted:
    """A worker began a task (``attempt`` counts from 1)."""

    worker_id: int
    device: str
    task_key: str
    size: int
    attempt: int


@dataclass(frozen=True)
class Progress:
    """``frames`` more frames of a task are done (an increment, not a total)."""

    worker_id: int
    task_key: str
    frames: int


@dataclass(frozen=True)
class TaskFinished:
    """A task completed; ``result`` is what ``process_fn`` returned."""

    worker_id: int
    task_key: str
    result: dict[str, Any]
    seconds: float


@dataclass(frozen=True)
class TaskFailed:
    """An attempt at a task failed (exception or worker death); ``will_retry`` says whether it is re-queued."""

    worker_id: int
    task_key: str
    error: str
    attempt: int
    will_retry: bool


@dataclass(frozen=True)
class WorkerDied:
    """A worker process exited unexpectedly, or its ``init_fn`` raised."""

    worker_id: int
    device: str
    exitcode: int | None
    task_key: str | None
    reason: str
    will_restart: bool


@dataclass(frozen=True)
class WorkerRestarted:
    """A replacement process was started for a worker that died (``restarts`` so far on this slot)."""

    worker_id: int
    device: str
    restarts: int


Event = WorkerStarted | TaskStarted | Progress | TaskFinished | TaskFailed | WorkerDied | WorkerRestarted


class RunInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM stopped a run; finished outputs are kept. The CLI exits 130."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum


@dataclass
class RunReport:
    """What :meth:`BatchQueueManager.run` did.

    Attributes:
        finished: task key -> the dict ``process_fn`` returned.
        failed: task key -> the last error, for tasks that used up their retries.
        worker_errors: ``"worker N (device)"`` -> why that worker was given up.
        seconds: wall time of the run.
        write_error: the message of the first :class:`OutputError` a task raised (the run
            stopped handing out tasks then); None if there was none.
        not_run: keys of the tasks never started because of ``write_error``.
    """

    finished: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    worker_errors: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    write_error: str | None = None
    not_run: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no task failed."""
        return not self.failed and not self.not_run

    def raise_for_failures(self, stage: str = "") -> None:
        """Raise :class:`OutputError` after a write failure, else :class:`ShardsFailedError` naming
        the failed tasks, if any (see :func:`shards_failed_error`)."""
        if self.write_error is not None:
            for key, error in self.failed.items():
                logger.debug("task %s failed: %s", key, error)
            logger.info("%s%d task(s) finished and are kept; %d not started", f"{stage}: " if stage else "",
                        len(self.finished), len(self.not_run))
            raise OutputError(self.write_error)
        if self.failed:
            raise shards_failed_error(self, stage)


def shards_failed_error(report: RunReport, stage: str = "") -> ShardsFailedError:
    """A one-line :class:`ShardsFailedError` for a report with failed tasks.

    The full error of each task is logged at ERROR level here; the message
    names up to five tasks and the first error.
    """
    for key, error in report.failed.items():
        logger.error("task %s failed: %s", key, error)
    keys = sorted(report.failed)
    shown = ", ".join(keys[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")
    first = report.failed[keys[0]].splitlines()[0] if keys else ""
    where = f"{stage}: " if stage else ""
    return ShardsFailedError(
        f"{where}{len(keys)} task(s) failed ({shown}; first error: {first}); "
        f"{len(report.finished)} finished task(s) are kept, re-run the same command to retry"
    )


# --------------------------------------------------------------------------- worker side


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


def _callable_spec(fn: WorkerFn) -> str:
    """A string a spawned child can import; refuses lambdas and nested functions early."""
    if isinstance(fn, str):
        resolve_callable(fn)
        return fn
    qualname = getattr(fn, "__qualname__", "")
    module = getattr(fn, "__module__", None)
    if not module or not qualname or "<" in qualname:
        raise ValueError(f"worker function {fn!r} must be a module-level function (spawned workers import it)")
    return f"{module}:{qualname}"


class _StopRequested(BaseException):
    """Raised inside a worker's progress callback when the parent asks it to stop.

    A BaseException so that a ``process_fn`` catching ``Exception`` cannot swallow it.
    """


class _ProgressReporter:
    """The ``progress`` callable given to ``process_fn``: coalesces increments, sends at most every ``interval`` s."""

    def __init__(self, send: Callable[[tuple], None], task_key: str, interval: float,
                 stop_requested: Callable[[], bool]) -> None:
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
                raise _StopRequested()

    def flush(self) -> None:
        if self._pending:
            self._send(("progress", self._key, self._pending))
            self._pending = 0


def _run_task(process_fn: Callable[..., Any], state: Any, task: Task, send: Callable[[tuple], None],
              progress_interval: float, stop_requested: Callable[[], bool]) -> None:
    """Run one task and report ``done`` or ``error`` through ``send`` (shared by both modes)."""
    started = time.monotonic()
    send(("start", task.key))
    reporter = _ProgressReporter(send, task.key, progress_interval, stop_requested)
    try:
        result = process_fn(state, task, reporter)
        reporter.flush()
        result = {} if result is None else dict(result)
    except _StopRequested:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure of user code is reported, the worker lives on
        write_error = str(exc) if isinstance(exc, OutputError) else None
        send(("error", task.key, f"{type(exc).__name__}: {exc}", traceback.format_exc(), write_error))
        return
    try:
        send(("done", task.key, result, time.monotonic() - started))
    except Exception as exc:  # noqa: BLE001 - e.g. an unpicklable result
        send(("error", task.key, f"result could not be sent: {type(exc).__name__}: {exc}", traceback.format_exc(), None))


class _PipeLogHandler(logging.Handler):
    """Forwards a worker's ``virnucpro`` log records to the parent, which re-emits them."""

    def __init__(self, send: Callable[[tuple], None]) -> None:
        super().__init__(logging.DEBUG)
        self._send = send

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip()
            self._send(("log", record.name, record.levelno, message))
        except Exception:  # noqa: BLE001 - logging must never kill a worker
            pass


def _die_with_parent(parent_pid: int) -> None:
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


def _cuda_ordinal(device: str) -> int | None:
    if device == "cuda":
        return 0
    if device.startswith("cuda:"):
        return int(device.split(":", 1)[1])
    return None


def _worker_main(worker_id: int, device: str, init_spec: str, process_spec: str, init_args: dict[str, Any],
                 conn: Connection, parent_pid: int, cpu_threads: int | None, env: dict[str, str],
                 progress_interval: float) -> None:
    """Entry point of a spawned worker process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(parent_pid)
    os.environ.update(env)
    if cpu_threads:
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[name] = str(cpu_threads)

    send_lock = threading.Lock()

    def send(message: tuple) -> None:
        with send_lock:
            conn.send(message)

    package_logger = logging.getLogger("virnucpro")
    package_logger.handlers[:] = [_PipeLogHandler(send)]
    package_logger.setLevel(logging.DEBUG)
    package_logger.propagate = False

    started = time.monotonic()
    try:
        init_fn = resolve_callable(init_spec)
        process_fn = resolve_callable(process_spec)
        ordinal = _cuda_ordinal(device)
        if ordinal is not None:
            import torch

            torch.cuda.set_device(ordinal)
        state = init_fn(device, init_args)
        if cpu_threads and "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(cpu_threads)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, then this worker exits
        send(("init_error", f"{type(exc).__name__}: {exc}", traceback.format_exc()))
        conn.close()
        sys.exit(1)
    send(("ready", os.getpid(), time.monotonic() - started))

    def stop_requested() -> bool:
        # The parent only sends while we are busy to tell us to stop.
        return conn.poll()

    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        try:
            _run_task(process_fn, state, message, send, progress_interval, stop_requested)
        except (_StopRequested, BrokenPipeError, EOFError):
            return


# --------------------------------------------------------------------------- parent side


@dataclass
class _Slot:
    """One device's worker, across restarts."""

    worker_id: int
    device: str
    process: Any = None
    conn: Connection | None = None
    ready: bool = False
    task: Task | None = None
    task_started: float = 0.0
    launches: int = 0
    restarts: int = 0
    retired: bool = False
    last_heard: float = 0.0  # when the busy worker last sent anything (progress, logs)
    stalled: bool = False  # killed by the parent for making no progress

    @property
    def label(self) -> str:
        return f"worker {self.worker_id} ({self.device})"


def _describe_exit(exitcode: int | None) -> str:
    if exitcode is None:
        return "exit status unknown"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hint = " (out of memory? the kernel OOM killer sends SIGKILL)" if -exitcode == signal.SIGKILL else ""
        return f"killed by {name}{hint}"
    return f"exit code {exitcode}"


def default_cpu_threads(n_cpu_workers: int) -> int:
    """Cores available to this process divided between ``n_cpu_workers`` (at least 1)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, cores // max(1, n_cpu_workers))


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
    ) -> None:
        if not devices:
            raise ValueError("at least one device is needed")
        if in_process and len(devices) != 1:
            raise ValueError("in_process mode runs exactly one device")
        self.init_spec = _callable_spec(init_fn)
        self.process_spec = _callable_spec(process_fn)
        self.devices = [d.strip().lower() for d in devices]
        self.init_args = dict(init_args or {})
        self.max_task_retries = max_task_retries
        self.max_worker_restarts = max_worker_restarts
        self.on_event = on_event
        self.in_process = in_process
        self.worker_env = dict(worker_env or {})
        n_cpu = sum(1 for d in self.devices if d == "cpu")
        self.cpu_threads = cpu_threads if cpu_threads is not None else default_cpu_threads(n_cpu)
        self.stop_timeout = stop_timeout
        self.poll_interval = poll_interval
        self.progress_interval = progress_interval
        self.stall_timeout = stall_timeout
        self._ctx = multiprocessing.get_context("spawn")
        self._reset()

    def _reset(self) -> None:
        self._heap: list[tuple[int, int, Task]] = []
        self._seq = 0
        self._attempts: dict[str, int] = {}
        self._report = RunReport()
        self._slots = [_Slot(i, d) for i, d in enumerate(self.devices)]
        self._stop_signal: int | None = None

    # ------------------------------------------------------------------ public

    def run(self, tasks: Iterable[Task]) -> RunReport:
        """Process every task; return when each one has finished or failed for good.

        Raises:
            RunInterrupted: SIGINT/SIGTERM arrived (workers are stopped first).
            ValueError: two tasks share a key.
        """
        self._reset()
        for task in tasks:
            if task.key in self._attempts:
                raise ValueError(f"duplicate task key {task.key!r}")
            self._attempts[task.key] = 0
            self._push(task)
        started = time.monotonic()
        try:
            if self._heap:
                if self.in_process:
                    self._run_in_process()
                else:
                    self._run_workers()
        finally:
            self._report.seconds = time.monotonic() - started
        return self._report

    # ------------------------------------------------------------------ shared bookkeeping

    def _push(self, task: Task) -> None:
        heapq.heappush(self._heap, (-task.size, self._seq, task))
        self._seq += 1

    def _emit(self, event: Event) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event(event)
        except Exception:  # noqa: BLE001 - a broken dashboard must not stop the run
            logger.debug("on_event callback failed for %r", event, exc_info=True)

    def _task_failed(self, slot: _Slot, task: Task, error: str, write_error: str | None = None) -> None:
        if write_error is not None:
            self._stop_after_write_error(slot, task, error, write_error)
            return
        attempt = self._attempts[task.key]
        will_retry = attempt <= self.max_task_retries
        level = logging.WARNING if will_retry else logging.ERROR
        logger.log(level, "task %s failed on %s (attempt %d%s): %s", task.key, slot.device, attempt,
                   ", will retry" if will_retry else ", giving up", error.splitlines()[0] if error else error)
        self._emit(TaskFailed(slot.worker_id, task.key, error, attempt, will_retry))
        if will_retry:
            self._push(task)
        else:
            self._report.failed[task.key] = error

    def _stop_after_write_error(self, slot: _Slot, task: Task, error: str, write_error: str) -> None:
        """No retry, no new tasks: the next write would fail the same way (disk full, read-only...)."""
        logger.debug("task %s could not write its output: %s", task.key, error)
        self._emit(TaskFailed(slot.worker_id, task.key, error, self._attempts[task.key], False))
        self._report.failed[task.key] = error
        if self._report.write_error is None:
            self._report.write_error = write_error
        while self._heap:
            self._report.not_run.append(heapq.heappop(self._heap)[2].key)

    def _handle_message(self, slot: _Slot, message: tuple) -> None:
        """Act on one message from a worker (the same messages in both modes)."""
        kind = message[0]
        if kind == "log":
            _, name, levelno, text = message
            record = logging.makeLogRecord(
                {"name": name, "levelno": levelno, "levelname": logging.getLevelName(levelno),
                 "msg": f"[{slot.device}] {text}", "processName": f"worker-{slot.worker_id}"}
            )
            logging.getLogger(name).handle(record)
        elif kind == "ready":
            _, pid, seconds = message
            slot.ready = True
            logger.debug("%s ready after %.1f s (pid %s)", slot.label, seconds, pid)
            self._emit(WorkerStarted(slot.worker_id, slot.device, pid, seconds))
        elif kind == "start":
            task = slot.task
            if task is not None:
                self._emit(TaskStarted(slot.worker_id, slot.device, task.key, task.size, self._attempts[task.key]))
        elif kind == "progress":
            self._emit(Progress(slot.worker_id, message[1], message[2]))
        elif kind == "done":
            _, key, result, seconds = message
            slot.task = None
            self._report.finished[key] = result
            logger.debug("task %s finished on %s in %.1f s", key, slot.device, seconds)
            self._emit(TaskFinished(slot.worker_id, key, result, seconds))
        elif kind == "error":
            _, key, error, trace, write_error = message
            task, slot.task = slot.task, None
            logger.debug("task %s raised on %s:\n%s", key, slot.device, trace)
            if task is not None:
                self._task_failed(slot, task, error, write_error)
        elif kind == "init_error":
            _, error, trace = message
            logger.error("%s could not start: %s", slot.label, error)
            logger.debug("%s init traceback:\n%s", slot.label, trace)
            # A raising init_fn (bad model file, no memory on that GPU) would raise again: no restart.
            slot.retired = True
            self._report.worker_errors[slot.label] = error
            self._emit(WorkerDied(slot.worker_id, slot.device, None, None, error, False))

    # ------------------------------------------------------------------ in-process mode

    def _run_in_process(self) -> None:
        slot = self._slots[0]
        previous = self._install_signal_handlers(raise_at_once=True)
        try:
            init_fn = resolve_callable(self.init_spec)
            process_fn = resolve_callable(self.process_spec)
            started = time.monotonic()
            try:
                state = init_fn(slot.device, self.init_args)
            except Exception as exc:  # noqa: BLE001 - same outcome as a worker whose init failed
                self._handle_message(slot, ("init_error", f"{type(exc).__name__}: {exc}", traceback.format_exc()))
                self._fail_remaining()
                return
            self._handle_message(slot, ("ready", os.getpid(), time.monotonic() - started))
            send = lambda message: self._handle_message(slot, message)  # noqa: E731
            while self._heap:
                slot.task = heapq.heappop(self._heap)[2]
                self._attempts[slot.task.key] += 1
                _run_task(process_fn, state, slot.task, send, self.progress_interval, lambda: False)
        finally:
            self._restore_signal_handlers(previous)

    # ------------------------------------------------------------------ worker processes

    def _run_workers(self) -> None:
        previous = self._install_signal_handlers(raise_at_once=False)
        interrupted = False
        try:
            while self._heap or any(slot.task is not None for slot in self._slots):
                if self._stop_signal is not None:
                    interrupted = True
                    raise RunInterrupted(self._stop_signal)
                self._start_needed_workers()
                self._dispatch()
                live = [slot for slot in self._slots if slot.process is not None]
                if not live:
                    self._fail_remaining()
                    break
                waitables: list[Any] = [slot.process.sentinel for slot in live]
                waitables += [slot.conn for slot in live if slot.conn is not None]
                ready = set(wait_for_ready(waitables, timeout=self.poll_interval))
                for slot in live:
                    if slot.conn is not None and slot.conn in ready:
                        self._drain(slot)
                    if slot.process.sentinel in ready:
                        self._on_worker_exit(slot)
                self._kill_stalled(live)
        except BaseException:
            interrupted = True
            raise
        finally:
            self._shutdown(graceful=not interrupted)
            self._restore_signal_handlers(previous)

    def _kill_stalled(self, slots: Sequence[_Slot]) -> None:
        """SIGKILL a busy worker that sent nothing for ``stall_timeout`` seconds (a hung GPU or
        driver call): its sentinel then fires and the usual retry and restart rules apply."""
        if not self.stall_timeout:
            return
        now = time.monotonic()
        for slot in slots:
            if slot.process is None or slot.task is None or slot.stalled:
                continue
            if now - slot.last_heard > self.stall_timeout:
                logger.error("%s sent nothing for %.0f s while running %s; killing it", slot.label,
                             now - slot.last_heard, slot.task.key)
                slot.stalled = True
                slot.process.kill()

    def _start_needed_workers(self) -> None:
        idle_or_starting = sum(1 for s in self._slots if s.process is not None and s.task is None)
        needed = len(self._heap) - idle_or_starting
        for slot in self._slots:
            if needed <= 0:
                break
            if slot.process is not None or slot.retired:
                continue
            if slot.launches:
                slot.restarts += 1
                logger.warning("restarting %s (restart %d of %d)", slot.label, slot.restarts,
                               self.max_worker_restarts)
                self._emit(WorkerRestarted(slot.worker_id, slot.device, slot.restarts))
            self._launch(slot)
            needed -= 1

    def _launch(self, slot: _Slot) -> None:
        parent_conn, child_conn = self._ctx.Pipe(duplex=True)
        threads = self.cpu_threads if slot.device == "cpu" else None
        process = self._ctx.Process(
            target=_worker_main,
            name=f"virnucpro-worker-{slot.worker_id}",
            args=(slot.worker_id, slot.device, self.init_spec, self.process_spec, self.init_args, child_conn,
                  os.getpid(), threads, self.worker_env, self.progress_interval),
            daemon=True,
        )
        process.start()
        child_conn.close()  # so that the parent sees EOF when the worker dies
        slot.process, slot.conn, slot.ready, slot.task = process, parent_conn, False, None
        slot.launches += 1
        logger.debug("started %s as pid %s", slot.label, process.pid)

    def _dispatch(self) -> None:
        for slot in self._slots:
            if not self._heap:
                return
            if slot.process is None or slot.conn is None or not slot.ready or slot.task is not None:
                continue
            task = heapq.heappop(self._heap)[2]
            try:
                slot.conn.send(task)
            except (OSError, ValueError):
                self._push(task)  # the worker is dying; its sentinel will tell us
                slot.conn = None
                continue
            slot.task, slot.task_started = task, time.monotonic()
            slot.last_heard = slot.task_started
            self._attempts[task.key] += 1

    def _drain(self, slot: _Slot) -> None:
        """Handle every message waiting on the slot's pipe; on EOF stop listening to it."""
        conn = slot.conn
        while conn is not None and slot.conn is conn:
            try:
                if not conn.poll():
                    return
                message = conn.recv()
            except (EOFError, OSError):
                conn.close()
                slot.conn = None
                return
            slot.last_heard = time.monotonic()
            self._handle_message(slot, message)

    def _on_worker_exit(self, slot: _Slot) -> None:
        self._drain(slot)  # a worker may have reported "done" just before dying
        process = slot.process
        process.join(timeout=1)
        exitcode = process.exitcode
        if slot.conn is not None:
            slot.conn.close()
        slot.process, slot.conn, slot.ready = None, None, False
        task, slot.task = slot.task, None
        if slot.retired:  # init_fn raised; already reported
            return
        if slot.stalled:
            reason = f"worker on {slot.device} made no progress for {self.stall_timeout:g} s and was killed"
            slot.stalled = False
        else:
            reason = f"worker on {slot.device} died: {_describe_exit(exitcode)}"
        will_restart = slot.restarts < self.max_worker_restarts
        if not will_restart:
            slot.retired = True
            self._report.worker_errors[slot.label] = f"{reason}; gave up after {slot.restarts} restart(s)"
        logger.warning("%s%s", reason, f" while running {task.key}" if task else "")
        self._emit(WorkerDied(slot.worker_id, slot.device, exitcode, task.key if task else None, reason,
                              will_restart))
        if task is not None:
            self._task_failed(slot, task, reason)

    def _fail_remaining(self) -> None:
        why = "; ".join(f"{k}: {v}" for k, v in self._report.worker_errors.items()) or "no worker could start"
        while self._heap:
            task = heapq.heappop(self._heap)[2]
            self._report.failed[task.key] = f"no worker left to run it ({why})"
        logger.error("no worker left; %d task(s) not run", len(self._report.failed))

    def _shutdown(self, graceful: bool) -> None:
        """Stop every worker: ask, wait up to ``stop_timeout``, terminate, then kill."""
        live = [slot for slot in self._slots if slot.process is not None]
        if not live:
            return
        if not graceful:
            logger.warning("stopping %d worker(s)...", len(live))
        for slot in live:
            if slot.conn is not None:
                try:
                    slot.conn.send(None)
                except (OSError, ValueError):
                    pass
        deadline = time.monotonic() + self.stop_timeout
        for slot in live:
            slot.process.join(timeout=max(0.0, deadline - time.monotonic()))
        for slot in live:
            if slot.process.is_alive():
                slot.process.terminate()
        for slot in live:
            slot.process.join(timeout=2)
            if slot.process.is_alive():
                slot.process.kill()
                slot.process.join(timeout=2)
            if slot.process.is_alive():
                logger.error("%s (pid %s) did not exit after SIGKILL", slot.label, slot.process.pid)
            else:
                slot.process.close()
            if slot.conn is not None:
                slot.conn.close()
            slot.process, slot.conn, slot.task = None, None, None

    # ------------------------------------------------------------------ signals

    def _install_signal_handlers(self, raise_at_once: bool) -> dict[int, Any]:
        """SIGINT/SIGTERM: set a flag (a second signal, or ``raise_at_once``, raises immediately)."""
        if threading.current_thread() is not threading.main_thread():
            return {}

        def handler(signum: int, _frame: Any) -> None:
            if raise_at_once or self._stop_signal is not None:
                raise RunInterrupted(signum)
            self._stop_signal = signum
            logger.warning("%s received: stopping workers, finished work is kept", signal.Signals(signum).name)

        previous = {}
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.getsignal(signum)
            signal.signal(signum, handler)
        return previous

    @staticmethod
    def _restore_signal_handlers(previous: dict[int, Any]) -> None:
        for signum, old in previous.items():
            signal.signal(signum, old if old is not None else signal.SIG_DFL)
