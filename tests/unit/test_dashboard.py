"""Dashboard state, plain progress lines and the rich view, driven by real work-queue events."""

from __future__ import annotations

import io
import logging
import time
from pathlib import Path

from rich.console import Console

from tests.helpers.toy_workers import write_inputs
from virnucpro.pipeline.dashboard import Dashboard, format_duration
from virnucpro.pipeline.gpu_monitor import GpuSample
from virnucpro.pipeline.work_queue import (
    BatchQueueManager,
    Progress,
    TaskFailed,
    TaskFinished,
    TaskStarted,
    WorkerDied,
    WorkerStarted,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _dashboard(clock: FakeClock, **kwargs) -> Dashboard:
    return Dashboard("esm", 50_000, ["cuda:0", "cuda:1"], no_dashboard=True, clock=clock, **kwargs)


def test_format_duration() -> None:
    assert format_duration(180) == "0:03:00"
    assert format_duration(3 * 3600 + 61) == "3:01:01"
    assert format_duration(None) == "?"


def test_status_line_counts_rate_eta_and_workers() -> None:
    clock = FakeClock()
    board = _dashboard(clock)
    for worker in (0, 1):
        board.handle(WorkerStarted(worker, f"cuda:{worker}", 100 + worker, 1.0))
    board.handle(TaskStarted(0, "cuda:0", "shard-3", 20_000, 1))
    board.handle(TaskStarted(1, "cuda:1", "shard-5", 15_000, 1))
    clock.now += 100
    board.handle(Progress(0, "shard-3", 7_000))
    board.handle(Progress(1, "shard-5", 5_000))
    assert board.status_line() == (
        "[esm] 12,000/50,000 frames (24.0%) 120 frames/s ETA 0:05:17 workers: cuda:0 shard-3, cuda:1 shard-5"
    )


def test_failed_attempt_progress_is_taken_back_and_finish_fills_the_task() -> None:
    clock = FakeClock()
    board = _dashboard(clock)
    board.handle(TaskStarted(0, "cuda:0", "a", 1_000, 1))
    board.handle(Progress(0, "a", 600))
    board.handle(WorkerDied(0, "cuda:0", -9, "a", "killed", True))
    board.handle(TaskFailed(0, "a", "killed", 1, True))
    assert "0/50,000" in board.status_line() and "cuda:0 restarting" in board.status_line()
    board.handle(TaskStarted(1, "cuda:1", "a", 1_000, 2))
    board.handle(Progress(1, "a", 10))  # progress may be under-reported; finishing counts the task whole
    board.handle(TaskFinished(1, "a", {}, 3.0))
    assert "1,000/50,000" in board.status_line()
    board.handle(TaskStarted(0, "cuda:0", "b", 5, 1))
    board.handle(TaskFailed(0, "b", "ValueError", 3, False))
    assert board.status_line().endswith("failed: 1")


def test_render_shows_gpu_numbers_and_survives_a_failing_sampler() -> None:
    clock = FakeClock()
    samples = {0: GpuSample(87, 12 << 30, 80 << 30)}

    def sampler(ordinal: int):
        if ordinal == 1:
            raise RuntimeError("NVML went away")
        return samples[ordinal]

    board = _dashboard(clock, sampler=sampler)
    board.handle(TaskStarted(0, "cuda:0", "shard-3", 2_000, 1))
    clock.now += 10
    board.handle(Progress(0, "shard-3", 500))
    out = io.StringIO()
    Console(file=out, width=140).print(board.render())
    text = out.getvalue()
    assert "shard-3" in text and "500/2,000" in text and "87%" in text and "12.0/80.0 GiB" in text
    assert "cuda:1" in text and "ETA" in text


def test_plain_mode_logs_lines_at_the_interval_with_a_real_run(tmp_path: Path, caplog) -> None:
    tasks = write_inputs(tmp_path, {"a": 30, "b": 20}, modes={"a": "slow", "b": "slow"}, delay=0.004)
    caplog.set_level(logging.INFO, logger="virnucpro")
    board = Dashboard("toy", sum(t.size for t in tasks), ["cpu"], no_dashboard=True, interval=0.05)
    assert board.live is False
    with board:
        report = BatchQueueManager("tests.helpers.toy_workers:square_init", "tests.helpers.toy_workers:square_process",
                                   ["cpu"], on_event=board.handle, in_process=True,
                                   progress_interval=0.01).run(tasks)
        time.sleep(0.12)
    assert report.ok
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("[toy]")]
    assert any("frames/s ETA" in line for line in lines)
    assert lines[-1].startswith("[toy] finished: 50/50 frames in")
    assert "50/50 frames (100.0%)" in board.status_line()


def test_live_mode_starts_and_stops_cleanly() -> None:
    board = Dashboard("esm", 10, ["cpu"], sampler=lambda ordinal: None)
    board.live = True  # as on a terminal
    with board:
        board.handle(TaskStarted(0, "cpu", "t", 10, 1))
        board.handle(Progress(0, "t", 10))
        logging.getLogger("virnucpro.test").info("a log line during the live view")
    assert board._live is None
