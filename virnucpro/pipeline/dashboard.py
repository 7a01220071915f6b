"""Progress of one stage of a run: a rich live table on a terminal, plain log lines elsewhere.

:class:`Dashboard` consumes the events of :mod:`virnucpro.pipeline.work_queue`
(pass ``dashboard.handle`` as ``on_event``) and is a context manager::

    with Dashboard("esm", total_frames, devices) as dashboard:
        report = BatchQueueManager(..., devices, on_event=dashboard.handle).run(tasks)

On a terminal it shows one row per worker (device, task, frames done of the
task, frames/s, GPU utilisation and memory) under an overall bar with ETA.
When stdout is not a terminal (SLURM, pipes) or ``no_dashboard=True`` it logs
a line such as ``[esm] 12,340/50,000 frames (24.7%) 210 frames/s ETA 0:03:00
workers: cuda:0 shard-3, cuda:1 shard-5`` every ``interval`` seconds. A failing
GPU query or rendering bug is logged at DEBUG and never stops the run.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from virnucpro.pipeline import gpu_monitor
from virnucpro.pipeline.work_queue import (
    Event,
    Progress,
    TaskFailed,
    TaskFinished,
    TaskStarted,
    WorkerDied,
    WorkerRestarted,
    WorkerStarted,
)

logger = logging.getLogger(__name__)

GPU_SAMPLE_SECONDS = 2.0


def format_duration(seconds: float | None) -> str:
    """``H:MM:SS``, or ``?`` when unknown."""
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "?"
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


@dataclass
class _WorkerRow:
    device: str
    state: str = "starting"
    task_key: str | None = None
    task_size: int = 0
    task_done: int = 0
    task_started: float = 0.0


class Dashboard:
    """Live view or periodic log lines for one stage.

    Args:
        stage: short stage name shown in brackets, e.g. ``"esm"``.
        total_frames: frames this stage will process (sum of task sizes).
        devices: one per worker, in worker-id order (as given to the manager).
        no_dashboard: force plain log lines even on a terminal.
        interval: seconds between plain log lines.
        sampler: ``ordinal -> GpuSample | None``; :func:`gpu_monitor.sample` by default.
        clock: monotonic clock (tests pass their own).
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
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stage = stage
        self.total_frames = max(0, int(total_frames))
        self.live = not no_dashboard and sys.stdout.isatty()
        self.interval = interval
        self._sampler = sampler
        self._clock = clock
        self._rows = [_WorkerRow(device) for device in devices]
        self._task_done: dict[str, int] = {}
        self._done = 0  # frames of finished tasks plus progress of running ones
        self._processed = 0  # every frame any attempt processed; the rate uses this
        self._failed: set[str] = set()
        self._started = clock()
        self._lock = threading.Lock()
        self._gpu_cache: dict[int, tuple[float, Any]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._live: Any = None
        self._swapped_handlers: list[tuple[logging.StreamHandler, Any]] = []

    # ------------------------------------------------------------------ events

    def handle(self, event: Event) -> None:
        """Update the state from one work-queue event (use as ``on_event``)."""
        with self._lock:
            if event.worker_id >= len(self._rows):
                return
            row = self._rows[event.worker_id]
            if isinstance(event, WorkerStarted):
                row.state = "idle"
            elif isinstance(event, TaskStarted):
                row.state, row.task_key, row.task_size = "busy", event.task_key, event.size
                row.task_done, row.task_started = 0, self._clock()
                self._task_done[event.task_key] = 0
            elif isinstance(event, Progress):
                row.task_done += event.frames
                self._task_done[event.task_key] = self._task_done.get(event.task_key, 0) + event.frames
                self._done += event.frames
                self._processed += event.frames
            elif isinstance(event, TaskFinished):
                progressed = self._task_done.pop(event.task_key, 0)
                size = row.task_size if row.task_key == event.task_key else progressed
                self._done += max(0, size - progressed)
                self._processed += max(0, size - progressed)
                row.state, row.task_key = "idle", None
            elif isinstance(event, TaskFailed):
                self._done -= self._task_done.pop(event.task_key, 0)  # the task will be redone
                if not event.will_retry:
                    self._failed.add(event.task_key)
                if row.task_key == event.task_key:
                    row.state, row.task_key = "idle", None
            elif isinstance(event, WorkerDied):
                row.state, row.task_key = ("restarting" if event.will_restart else "dead"), None
            elif isinstance(event, WorkerRestarted):
                row.state = "starting"

    # ------------------------------------------------------------------ numbers

    def _rate(self) -> float | None:
        elapsed = self._clock() - self._started
        return self._processed / elapsed if elapsed > 0 and self._processed else None

    def _eta(self) -> float | None:
        rate = self._rate()
        return max(0, self.total_frames - self._done) / rate if rate else None

    def _worker_label(self, row: _WorkerRow) -> str:
        return f"{row.device} {row.task_key}" if row.task_key else f"{row.device} {row.state}"

    def status_line(self) -> str:
        """The plain progress line (also the last line logged when the stage ends)."""
        with self._lock:
            done = min(self._done, self.total_frames)
            pct = 100.0 * done / self.total_frames if self.total_frames else 100.0
            rate = self._rate()
            line = (
                f"[{self.stage}] {done:,}/{self.total_frames:,} frames ({pct:.1f}%) "
                f"{rate or 0:,.0f} frames/s ETA {format_duration(self._eta())} "
                f"workers: {', '.join(self._worker_label(r) for r in self._rows)}"
            )
            if self._failed:
                line += f" failed: {len(self._failed)}"
            return line

    def _gpu(self, device: str) -> Any:
        """A cached GPU sample for ``cuda:N`` devices (None for CPU or when NVML cannot tell)."""
        if not device.startswith("cuda"):
            return None
        ordinal = int(device.split(":", 1)[1]) if ":" in device else 0
        now = self._clock()
        cached = self._gpu_cache.get(ordinal)
        if cached is None or now - cached[0] >= GPU_SAMPLE_SECONDS:
            try:
                value = self._sampler(ordinal)
            except Exception:  # noqa: BLE001 - monitoring must never break the run
                logger.debug("GPU sample failed", exc_info=True)
                value = None
            cached = (now, value)
            self._gpu_cache[ordinal] = cached
        return cached[1]

    def render(self) -> Any:
        """The rich renderable of the live view."""
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        try:
            table = Table(title=f"virnucpro: {self.stage}", title_justify="left", expand=False)
            for column in ("device", "task", "frames", "frames/s", "GPU util", "GPU memory"):
                table.add_column(column, justify="left" if column in ("device", "task") else "right")
            now = self._clock()
            with self._lock:
                rows = [(r.device, r.state, r.task_key, r.task_done, r.task_size, r.task_started) for r in self._rows]
                done, total, rate, eta = min(self._done, self.total_frames), self.total_frames, self._rate(), self._eta()
            for device, state, key, task_done, size, started in rows:
                busy = key is not None
                speed = task_done / (now - started) if busy and now > started and task_done else None
                gpu = self._gpu(device)
                util = f"{gpu.utilization}%" if gpu is not None and gpu.utilization is not None else "-"
                mem = (
                    f"{gpu.memory_used / 2**30:.1f}/{gpu.memory_total / 2**30:.1f} GiB"
                    if gpu is not None and gpu.memory_used is not None and gpu.memory_total
                    else "-"
                )
                table.add_row(
                    device,
                    key if busy else state,
                    f"{task_done:,}/{size:,}" if busy else "-",
                    f"{speed:,.0f}" if speed else "-",
                    util,
                    mem,
                )
            pct = 100.0 * done / total if total else 100.0
            summary = Text(
                f" {done:,}/{total:,} frames ({pct:.1f}%)  {rate or 0:,.0f} frames/s  ETA {format_duration(eta)}"
                + (f"  failed: {len(self._failed)}" if self._failed else "")
            )
            return Group(table, ProgressBar(total=max(total, 1), completed=done, width=60), summary)
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
        logger.info(
            "[%s] %s %s/%s frames in %s (%s frames/s)%s",
            self.stage,
            "finished:" if exc[0] is None else "stopped:",
            f"{min(self._done, self.total_frames):,}",
            f"{self.total_frames:,}",
            format_duration(elapsed),
            f"{rate or 0:,.0f}",
            f", {len(self._failed)} task(s) failed" if self._failed else "",
        )
