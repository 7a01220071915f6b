"""Progress of one stage of a run: a rich live table on a terminal, plain log lines elsewhere.

:class:`Dashboard` consumes the events of :mod:`virnucpro.pipeline.workqueue.manager`
(pass ``dashboard.handle`` as ``on_event``) and is a context manager::

    with Dashboard("esm", total_frames, devices) as dashboard:
        report = BatchQueueManager(..., devices, on_event=dashboard.handle).run(tasks)

``predict`` has two stages (:data:`STAGE_COUNT`): ``embed`` (translate, DNABERT-S and
ESM-2, overlapped on one queue: one worker per device holding both models) and
``score + assemble``. The queue's view shows the stage (``stage 1 of 2: embed``),
then the numbers (frames done of both models, percent, frames/s, ETA and the
run's overall ETA) on their own line so that a narrow terminal wraps them
instead of cutting them, a bar as wide as the terminal, and one row per worker
(its name ``cuda:1`` / ``cpu-0``, model and shard, frames done of the shard,
frames/s, busy share since it was ready, and GPU utilisation and memory for GPU
workers or CPU use and resident memory for CPU workers). Below
:data:`MIN_LIVE_COLUMNS` columns, when stdout is not a terminal (SLURM, pipes)
or with ``no_dashboard=True`` it logs a line such as ``[embed 1/2] 12,340/50,000
frames (24.7%) 210 frames/s ETA 0:03:00 overall ETA 0:03:05 workers: cuda:0 esm
shard-00003 busy 97%, cuda:1 dnabert shard-00005 busy 95%`` every ``interval`` seconds.

With ``weights`` (each model's relative cost per frame, :func:`relative_costs`) the
ETA counts work, not frames: a frame of ESM-2 3B costs about 30 of DNABERT-S. While
translate still adds tasks, ``expected_tasks`` scales the known work up to the
expected number of tasks, so the ETA is for the whole run from the first shard on.
A failing GPU or process query or rendering bug is logged at DEBUG and never
stops the run.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from virnucpro.pipeline.report import gpu_monitor
from virnucpro.pipeline.report.samples import context_prefix as _context_prefix
from virnucpro.pipeline.workqueue.manager import (
    Event,
    Progress,
    TaskFailed,
    TaskFinished,
    TaskStarted,
    WorkerDied,
    WorkerRestarted,
    WorkerStarted,
)
from virnucpro.pipeline.workqueue.scheduler import worker_name

logger = logging.getLogger(__name__)

GPU_SAMPLE_SECONDS = 2.0
STAGE_COUNT = 2  # embed (translate + DNABERT-S + ESM-2, overlapped), score + assemble
MIN_LIVE_COLUMNS = 60  # below this the live table garbles: plain lines instead
WIDE_COLUMNS = 72  # below this the worker table leaves out frames/s


def _terminal_columns() -> int:
    """The terminal's width in columns (80 when it cannot tell)."""
    import shutil

    return shutil.get_terminal_size((80, 24)).columns


def format_duration(seconds: float | None) -> str:
    """``H:MM:SS``, or ``?`` when unknown."""
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "?"
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


@dataclass(frozen=True)
class ProcessSample:
    """CPU use of one worker process: percent of one core since the last sample, resident bytes."""

    cpu_percent: float | None
    rss: int | None


_processes: dict[int, Any] = {}


def sample_process(pid: int) -> ProcessSample | None:
    """CPU percent (since this pid's previous sample; 0 on the first) and RSS of ``pid``; None if gone."""
    import psutil

    try:
        process = _processes.get(pid)
        if process is None or not process.is_running():
            process = _processes[pid] = psutil.Process(pid)
        with process.oneshot():
            if process.status() == psutil.STATUS_ZOMBIE:  # exited, not yet reaped: its numbers read 0
                return None
            return ProcessSample(process.cpu_percent(None), process.memory_info().rss)
    except psutil.Error:
        _processes.pop(pid, None)
        return None


def later_cost_factor(stage: str, identities: dict[str, Any] | None) -> float | None:
    """Estimated time of the stages after ``stage`` as a multiple of ``stage``'s own time, or None if unknown.

    After ESM-2 only scoring is left (seconds): 0. After DNABERT-S comes ESM-2 over
    the same frames; for the published models (recognised by their dims) the SPEC 8
    cost model puts it at the ratio of their FLOPs per frame. Other models: unknown.
    """
    if stage == "esm":
        return 0.0
    if stage != "dnabert" or not identities:
        return None
    from virnucpro.benchmark.flops import DNABERT_S, ESM2_3B

    dims = (identities.get("dnabert", {}).get("dim"), identities.get("esm", {}).get("dim"))
    if dims != (DNABERT_S.dim, ESM2_3B.dim):
        return None
    # typical tokens per frame of a 500 bp chunk: ~168 amino acids + BOS/EOS, ~110 BPE tokens
    return ESM2_3B.sequence_flops(168) / DNABERT_S.sequence_flops(110)


def relative_costs(identities: dict[str, Any] | None) -> dict[str, float]:
    """Each model's cost per frame relative to DNABERT-S (the queue's order and the ETA's weights):
    the published pair by their FLOPs per frame (:func:`later_cost_factor`), any other pair 1:1
    (unknown, so frames count alike)."""
    factor = later_cost_factor("dnabert", identities)
    return {"dnabert": 1.0, "esm": factor if factor else 1.0}


@dataclass
class _WorkerRow:
    device: str
    name: str
    pid: int | None = None
    state: str = "starting"
    task_key: str | None = None
    task_size: int = 0
    task_done: int = 0
    task_started: float = 0.0
    ready_at: float | None = None  # when the (latest) process reported ready
    busy_since: float | None = None  # when its current busy spell began
    busy_total: float = 0.0  # seconds busy before the current spell


class Dashboard:
    """Live view or periodic log lines for one stage.

    Args:
        stage: short stage name shown in brackets, e.g. ``"esm"``.
        total_frames: frames this stage will process (sum of task sizes).
        devices: one per worker, in worker-id order (as given to the manager).
        no_dashboard: force plain log lines even on a terminal.
        interval: seconds between plain log lines.
        sampler: ``ordinal -> GpuSample | None``; :func:`gpu_monitor.sample` by default.
        process_sampler: ``pid -> ProcessSample | None`` for CPU workers; :func:`sample_process` by default.
        clock: monotonic clock (tests pass their own).
        stage_number: this stage's place among the :data:`STAGE_COUNT` stages of ``predict``.
        later_factor: time of the later stages as a multiple of this one (see
            :func:`later_cost_factor`); None when unknown (the overall ETA shows ``?``).
        weights: model name (a task key's suffix) -> relative cost per frame, for the ETA;
            None: every frame costs the same.
        expected_tasks: how many tasks the stage will have in all, when more are still being
            added (:meth:`add_task`); the ETA scales the known work up to it.
    """

    def __init__(
        self,
        stage: str,
        total_frames: int,
        devices: Sequence[str],
        *,
        no_dashboard: bool = False,
        interval: float = 30.0,
        sampler: Callable[[int], Any] = gpu_monitor.sample,
        process_sampler: Callable[[int], ProcessSample | None] = sample_process,
        clock: Callable[[], float] = time.monotonic,
        stage_number: int | None = None,
        later_factor: float | None = 0.0,
        weights: dict[str, float] | None = None,
        expected_tasks: int | None = None,
    ) -> None:
        self.stage = stage
        self.total_frames = max(0, int(total_frames))
        self.live = not no_dashboard and sys.stdout.isatty()
        self.interval = interval
        self._sampler = sampler
        self._process_sampler = process_sampler
        self._clock = clock
        self.stage_number = stage_number
        self.later_factor = later_factor
        self.weights = dict(weights or {})
        self.expected_tasks = expected_tasks
        self._known_tasks = 0
        self.total_cost = float(self.total_frames)
        self._rows = [_WorkerRow(device, worker_name(i, device)) for i, device in enumerate(devices)]
        self._task_done: dict[str, int] = {}
        self._done = 0  # frames of finished tasks plus progress of running ones
        self._processed = 0  # every frame any attempt processed
        self._done_cost = 0.0  # as _done and _processed, weighted: the rate and ETA use these
        self._processed_cost = 0.0
        self._failed: set[str] = set()
        self._started = clock()
        self._lock = threading.Lock()
        self._gpu_cache: dict[int, tuple[float, Any]] = {}
        self._process_cache: dict[int, tuple[float, Any]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._live: Any = None
        self._swapped_handlers: list[tuple[logging.StreamHandler, Any]] = []

    # ------------------------------------------------------------------ events

    def _weight(self, key: str) -> float:
        return self.weights.get(key.rpartition(":")[2], 1.0) if self.weights else 1.0

    def add_task(self, key: str, frames: int) -> None:
        """A task of ``frames`` frames joined the stage (thread-safe)."""
        with self._lock:
            self._known_tasks += 1
            self.total_frames += frames
            self.total_cost += frames * self._weight(key)

    def _count(self, key: str, frames: int, processed: bool = True) -> None:
        cost = frames * self._weight(key)
        self._done += frames
        self._done_cost += cost
        if processed:
            self._processed += frames
            self._processed_cost += cost

    def _set_busy(self, row: _WorkerRow, busy: bool) -> None:
        now = self._clock()
        if busy and row.busy_since is None:
            row.busy_since = now
        elif not busy and row.busy_since is not None:
            row.busy_total += now - row.busy_since
            row.busy_since = None

    def busy_share(self, row: _WorkerRow) -> float | None:
        """The share of the time since the worker was ready that it spent on tasks."""
        if row.ready_at is None:
            return None
        now = self._clock()
        span = now - row.ready_at
        busy = row.busy_total + (now - row.busy_since if row.busy_since is not None else 0.0)
        return min(1.0, busy / span) if span > 0 else None

    def handle(self, event: Event) -> None:
        """Update the state from one work-queue event (use as ``on_event``)."""
        with self._lock:
            if event.worker_id >= len(self._rows):
                return
            row = self._rows[event.worker_id]
            if isinstance(event, WorkerStarted):
                row.state, row.pid = "idle", event.pid
                row.ready_at, row.busy_since, row.busy_total = self._clock(), None, 0.0
            elif isinstance(event, TaskStarted):
                row.state, row.task_key, row.task_size = "busy", event.task_key, event.size
                row.task_done, row.task_started = 0, self._clock()
                self._task_done[event.task_key] = 0
                self._set_busy(row, True)
            elif isinstance(event, Progress):
                row.task_done += event.frames
                self._task_done[event.task_key] = self._task_done.get(event.task_key, 0) + event.frames
                self._count(event.task_key, event.frames)
            elif isinstance(event, TaskFinished):
                progressed = self._task_done.pop(event.task_key, 0)
                size = row.task_size if row.task_key == event.task_key else progressed
                self._count(event.task_key, max(0, size - progressed))
                if row.task_key == event.task_key:  # with prefetch the worker may already run the next task
                    row.state, row.task_key = "idle", None
                    self._set_busy(row, False)
            elif isinstance(event, TaskFailed):
                # the task will be redone
                self._count(event.task_key, -self._task_done.pop(event.task_key, 0), processed=False)
                if not event.will_retry:
                    self._failed.add(event.task_key)
                if row.task_key == event.task_key:
                    row.state, row.task_key = "idle", None
                    self._set_busy(row, False)
            elif isinstance(event, WorkerDied):
                row.state, row.task_key = ("restarting" if event.will_restart else "dead"), None
                row.pid = None
                self._set_busy(row, False)
            elif isinstance(event, WorkerRestarted):
                row.state = "starting"

    # ------------------------------------------------------------------ numbers

    def _rate(self) -> float | None:
        elapsed = self._clock() - self._started
        return self._processed / elapsed if elapsed > 0 and self._processed else None

    def _planned_cost(self) -> float:
        """The stage's whole work: the known tasks', scaled up to ``expected_tasks`` while fewer are known."""
        expected, known = self.expected_tasks, self._known_tasks
        if expected and 0 < known < expected:
            return self.total_cost * expected / known
        return self.total_cost

    def _eta(self) -> float | None:
        elapsed = self._clock() - self._started
        if elapsed <= 0 or not self._processed_cost:
            return None
        return max(0.0, self._planned_cost() - self._done_cost) / (self._processed_cost / elapsed)

    def _overall_eta(self) -> float | None:
        """This stage's ETA plus the later stages' estimated time (``later_factor`` x this stage's whole time)."""
        eta = self._eta()
        if eta is None or self.later_factor is None:
            return None
        return eta + self.later_factor * (self._clock() - self._started + eta)

    def _stage_name(self) -> str:
        return f"{self.stage} {self.stage_number}/{STAGE_COUNT}" if self.stage_number else self.stage

    def _task_name(self, key: str) -> str:
        """``shard-00003:esm`` -> ``shard-00003`` when the stage is that model (shown once, above),
        else ``esm shard-00003`` (the model, then the shard)."""
        shard, sep, model = key.rpartition(":")
        if not sep or model == self.stage:
            return shard or key
        return f"{model} {shard}"

    def _shard_cell(self, key: str) -> str:
        """``shard-00003:esm`` -> ``esm 00003`` (``00003`` in a model's own stage) under the ``shard``
        header: narrow terminals keep the numbers."""
        return self._task_name(key).replace("shard-", "")

    def _busy_text(self, row: _WorkerRow) -> str:
        share = self.busy_share(row)
        return f"{100 * share:.0f}%" if share is not None else "-"

    def _worker_label(self, row: _WorkerRow) -> str:
        label = f"{row.name} {self._task_name(row.task_key)}" if row.task_key else f"{row.name} {row.state}"
        share = self.busy_share(row)
        return f"{label} busy {100 * share:.0f}%" if share is not None else label

    def _numbers(self) -> str:
        """Frames, percent, rate, ETA and overall ETA: the part of every view that must survive."""
        done = min(self._done, self.total_frames)
        pct = 100.0 * done / self.total_frames if self.total_frames else 100.0
        overall = self._overall_eta()
        approx = "~" if overall is not None and self.later_factor else ""
        text = (
            f"{done:,}/{self.total_frames:,} frames ({pct:.1f}%) {self._rate() or 0:,.0f} frames/s "
            f"ETA {format_duration(self._eta())} overall ETA {approx}{format_duration(overall)}"
        )
        if self._failed:
            text += f" failed: {len(self._failed)}"
        return text

    def status_line(self) -> str:
        """The plain progress line (also the last line logged when the stage ends)."""
        with self._lock:
            return (f"{_context_prefix(' ')}[{self._stage_name()}] {self._numbers()} "
                    f"workers: {', '.join(self._worker_label(r) for r in self._rows)}")

    def _cached(self, cache: dict[int, tuple[float, Any]], key: int, sample: Callable[[int], Any]) -> Any:
        now = self._clock()
        cached = cache.get(key)
        if cached is None or now - cached[0] >= GPU_SAMPLE_SECONDS:
            try:
                value = sample(key)
            except Exception:  # noqa: BLE001 - monitoring must never break the run
                logger.debug("device sample failed", exc_info=True)
                value = None
            cached = (now, value)
            cache[key] = cached
        return cached[1]

    def _gpu(self, device: str) -> Any:
        """A cached GPU sample for ``cuda:N`` devices (None for CPU or when NVML cannot tell)."""
        if not device.startswith("cuda"):
            return None
        ordinal = int(device.split(":", 1)[1]) if ":" in device else 0
        return self._cached(self._gpu_cache, ordinal, self._sampler)

    def _use_columns(self, device: str, pid: int | None) -> tuple[str, str]:
        """The last two cells of a row: GPU util and memory, or CPU percent and RSS of the worker process."""
        from virnucpro.sizes import human_size

        if device.startswith("cuda"):
            gpu = self._gpu(device)
            util = f"{gpu.utilization}%" if gpu is not None and gpu.utilization is not None else "-"
            mem = (
                f"{gpu.memory_used / 2**30:.1f}/{gpu.memory_total / 2**30:.1f} GiB"
                if gpu is not None and gpu.memory_used is not None and gpu.memory_total
                else "-"
            )
            return util, mem
        sample = self._cached(self._process_cache, pid, self._process_sampler) if pid is not None else None
        cpu = f"{sample.cpu_percent:.0f}%" if sample is not None and sample.cpu_percent is not None else "-"
        rss = human_size(sample.rss) if sample is not None and sample.rss is not None else "-"
        return cpu, rss

    def render(self) -> Any:
        """The rich renderable of the live view: title, numbers, bar, worker table (in that order),
        laid out for the width it is printed at (below :data:`WIDE_COLUMNS` the frames/s column
        is left out, so the rest keeps its numbers whole)."""
        board = self

        class _View:
            def __rich_console__(self, console: Any, options: Any) -> Any:
                yield board._view(options.max_width)

        return _View()

    def _view(self, width: int) -> Any:
        from rich import box
        from rich.console import Group, NewLine
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        try:
            now = self._clock()
            with self._lock:
                rows = [(r.name, r.device, r.pid, r.state, r.task_key, r.task_done, r.task_size, r.task_started,
                         self._busy_text(r)) for r in self._rows]
                done, total = min(self._done, self.total_frames), self.total_frames
                numbers = self._numbers()
            on_gpu = any(device.startswith("cuda") for _, device, *_ in rows)
            use_headers = ("GPU", "GPU mem") if on_gpu else ("CPU", "RSS")
            table = Table(box=box.SIMPLE_HEAD, expand=False, padding=(0, 1), pad_edge=False, show_edge=False)
            table.add_column("worker", no_wrap=True)
            table.add_column("shard", overflow="ellipsis", no_wrap=True, min_width=5)
            wide = width >= WIDE_COLUMNS
            for header in ("frames", *(("frames/s",) if wide else ()), "busy", *use_headers):
                table.add_column(header, justify="right", no_wrap=True)
            for name, device, pid, state, key, task_done, size, started, busy_text in rows:
                busy = key is not None
                speed = task_done / (now - started) if busy and now > started and task_done else None
                table.add_row(
                    name,
                    self._shard_cell(key) if key is not None else state,
                    f"{task_done:,}/{size:,}" if busy else "-",
                    *((f"{speed:,.0f}" if speed else "-",) if wide else ()),
                    busy_text,
                    *self._use_columns(device, pid),
                )
            stage = f"stage {self.stage_number} of {STAGE_COUNT}: " if self.stage_number else ""
            title = Text(f"virnucpro {_context_prefix(': ')}{stage}{self.stage}", style="bold")
            bar = ProgressBar(total=max(total, 1), completed=done)  # as wide as the terminal
            return Group(title, Text(numbers), bar, NewLine(), table)  # the bar does not end its line
        except Exception:  # noqa: BLE001
            logger.debug("dashboard render failed", exc_info=True)
            return Text(self.status_line())

    # ------------------------------------------------------------------ lifecycle

    def _log_periodically(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                logger.info("%s", self.status_line())
            except Exception:  # noqa: BLE001
                logger.debug("progress line failed", exc_info=True)

    def __enter__(self) -> "Dashboard":
        self._started = self._clock()
        if self.live and _terminal_columns() < MIN_LIVE_COLUMNS:
            logger.debug("terminal narrower than %d columns: plain progress lines", MIN_LIVE_COLUMNS)
            self.live = False
        if self.live:
            try:
                self._start_live()
                return self
            except Exception:  # noqa: BLE001 - fall back to plain lines
                logger.debug("live dashboard unavailable", exc_info=True)
                self.live = False
        self._thread = threading.Thread(target=self._log_periodically, name="virnucpro-progress", daemon=True)
        self._thread.start()
        return self

    def _start_live(self) -> None:
        from rich.console import Console
        from rich.live import Live

        self._live = Live(get_renderable=self.render, console=Console(), refresh_per_second=2,
                          redirect_stdout=True, redirect_stderr=True)
        self._live.start()
        # Our console log handler holds the real stderr; point it at rich's proxy so log lines
        # are printed above the live table instead of tearing it.
        for handler in logging.getLogger("virnucpro").handlers:
            if getattr(handler, "_virnucpro_console", False) and isinstance(handler, logging.StreamHandler):
                self._swapped_handlers.append((handler, handler.setStream(sys.stderr)))

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._live is not None:
            for handler, old in self._swapped_handlers:
                handler.setStream(old)
            self._swapped_handlers.clear()
            try:
                self._live.stop()
            except Exception:  # noqa: BLE001
                logger.debug("live dashboard stop failed", exc_info=True)
            self._live = None
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None
        elapsed = self._clock() - self._started
        rate = self._rate()
        # predict's embed stage counts a frame once per model: say so where the count is final.
        unit = f"frame embeddings ({len(self.weights)} models)" if self.stage_number and len(self.weights) > 1 else "frames"
        logger.info(
            "[%s] %s %s/%s %s in %s (%s/s)%s",
            self._stage_name(),
            "finished:" if exc[0] is None else "stopped:",
            f"{min(self._done, self.total_frames):,}",
            f"{self.total_frames:,}",
            unit,
            format_duration(elapsed),
            f"{rate or 0:,.0f}",
            f", {len(self._failed)} task(s) failed" if self._failed else "",
        )
