"""Dashboard state, plain progress lines and the rich view, driven by real work-queue events."""

from __future__ import annotations

import io
import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import psutil
from rich.console import Console

from tests.helpers.toy_workers import write_inputs
from virnucpro.pipeline.report.dashboard import (
    Dashboard,
    ProcessSample,
    format_duration,
    later_cost_factor,
    relative_costs,
    sample_process,
)
from virnucpro.pipeline.report.gpu_monitor import GpuSample
from virnucpro.pipeline.workqueue.manager import (
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
        "[esm] 12,000/50,000 frames (24.0%) 120 frames/s ETA 0:05:17 overall ETA 0:05:17 "
        "workers: cuda:0 shard-3 busy 100%, cuda:1 shard-5 busy 100%"
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
    assert "overall ETA ? failed: 1 workers:" in board.status_line()


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
    assert re.search(r"cuda:0 +3 +500/2,000 +50 +- +87% +12.0/80.0 GiB", text), text  # busy: never ready
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


def _rendered(board: Dashboard, width: int) -> str:
    out = io.StringIO()
    Console(file=out, width=width, color_system=None).print(board.render())
    return out.getvalue()


def _busy_cpu_board(clock: FakeClock, **kwargs) -> Dashboard:
    board = Dashboard("esm", 120_000, ["cpu", "cpu"], no_dashboard=True, clock=clock, stage_number=1,
                      process_sampler=lambda pid: ProcessSample(180.0 + pid, 1536 << 20), **kwargs)
    for worker in (0, 1):
        board.handle(WorkerStarted(worker, "cpu", worker, 1.0))
        board.handle(TaskStarted(worker, "cpu", f"shard-0000{worker + 1}:esm", 10_000, 1))
    clock.now += 100
    board.handle(Progress(0, "shard-00001:esm", 4_000))
    board.handle(Progress(1, "shard-00002:esm", 2_000))
    return board


def test_numbers_survive_narrow_terminals() -> None:
    board = _busy_cpu_board(FakeClock())
    for width in (80, 60):
        text = _rendered(board, width)
        assert max(len(line) for line in text.splitlines()) <= width
        flat = " ".join(text.split())  # a narrow terminal may wrap the numbers, never cut them
        for number in ("6,000/120,000 frames", "(5.0%)", "60 frames/s", "ETA 0:31:40", "overall ETA 0:31:40"):
            assert number in flat, (width, number, text)
        assert "stage 1 of 2: esm" in flat
        speed = r" +40" if width >= 72 else ""  # frames/s is left out of a narrow table
        assert re.search(rf"cpu-0 +00001 +4,000/10,000{speed} +100% +180% +1.5 GiB", text), text


def test_cpu_workers_show_their_own_names_cpu_use_and_rss() -> None:
    board = _busy_cpu_board(FakeClock())
    text = _rendered(board, 80)
    assert "GPU" not in text and "CPU" in text and "RSS" in text
    assert "cpu-0" in text and "cpu-1" in text
    assert "180%" in text and "181%" in text and "1.5 GiB" in text
    assert board.status_line().startswith("[esm 1/2] ")
    assert "workers: cpu-0 shard-00001 busy 100%, cpu-1 shard-00002 busy 100%" in board.status_line()


def test_real_process_sampler_reads_this_process() -> None:
    sample = sample_process(os.getpid())
    assert sample is not None and sample.rss is not None and sample.rss > 10 << 20
    assert sample_process(2**22 + 12345) is None  # beyond pid_max: no such process
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    while psutil.Process(child.pid).status() != psutil.STATUS_ZOMBIE:
        time.sleep(0.01)
    assert sample_process(child.pid) is None  # exited, not reaped: no made-up zeros
    child.wait()


def test_overall_eta_adds_the_later_stages() -> None:
    clock = FakeClock()
    board = Dashboard("dnabert", 1_000, ["cuda:0"], no_dashboard=True, clock=clock, sampler=lambda o: None,
                      stage_number=2, later_factor=10.0)
    board.handle(TaskStarted(0, "cuda:0", "s:dnabert", 1_000, 1))
    clock.now += 50
    board.handle(Progress(0, "s:dnabert", 500))
    # 50 s more here, then 10 x the stage's 100 s for ESM-2
    assert "ETA 0:00:50 overall ETA ~0:17:30" in board.status_line()
    unknown = Dashboard("dnabert", 1_000, ["cpu"], no_dashboard=True, clock=clock, later_factor=None)
    unknown.handle(TaskStarted(0, "cpu", "s:dnabert", 1_000, 1))
    clock.now += 50
    unknown.handle(Progress(0, "s:dnabert", 500))
    assert "ETA 0:00:50 overall ETA ?" in unknown.status_line()
    published = {"dnabert": {"dim": 768}, "esm": {"dim": 2560}}
    assert 20 < (later_cost_factor("dnabert", published) or 0) < 60
    assert later_cost_factor("dnabert", {"dnabert": {"dim": 48}, "esm": {"dim": 32}}) is None
    assert later_cost_factor("esm", published) == 0.0



def test_one_queue_of_both_models_shows_model_shard_busy_share_and_one_weighted_eta() -> None:
    """The run's queue: rows name the model and shard and the busy share since the worker was
    ready; the ETA weighs each model's frames by its cost and counts the tasks still to come."""
    clock = FakeClock()
    board = Dashboard("embed", 0, ["cpu", "cpu"], no_dashboard=True, clock=clock, stage_number=1,
                      weights={"dnabert": 1.0, "esm": 3.0}, expected_tasks=4,
                      process_sampler=lambda pid: None)
    for key in ("shard-00001:dnabert", "shard-00001:esm"):
        board.add_task(key, 100)
    for worker in (0, 1):
        board.handle(WorkerStarted(worker, "cpu", worker, 1.0))
    board.handle(TaskStarted(0, "cpu", "shard-00001:esm", 100, 1))
    board.handle(TaskStarted(1, "cpu", "shard-00001:dnabert", 100, 1))
    clock.now += 10
    board.handle(Progress(1, "shard-00001:dnabert", 100))
    board.handle(TaskFinished(1, "shard-00001:dnabert", {}, 10.0))
    clock.now += 10
    line = board.status_line()
    # 100 of 400 cost units in 20 s; the known 400 are half of the 4 tasks expected: 700 more at 5/s.
    assert line.startswith("[embed 1/2] 100/200 frames (50.0%) ")
    assert "ETA 0:02:20 overall ETA 0:02:20" in line
    assert "workers: cpu-0 esm shard-00001 busy 100%, cpu-1 idle busy 50%" in line
    text = _rendered(board, 80)
    assert re.search(r"cpu-0 +esm 00001 +0/100 +- +100%", text), text


def test_relative_costs_put_esm_first_for_the_published_models_and_alike_otherwise() -> None:
    published = {"dnabert": {"dim": 768}, "esm": {"dim": 2560}}
    costs = relative_costs(published)
    assert costs["dnabert"] == 1.0 and 20 < costs["esm"] < 60
    assert relative_costs({"dnabert": {"dim": 48}, "esm": {"dim": 32}}) == {"dnabert": 1.0, "esm": 1.0}


def test_a_terminal_narrower_than_60_columns_gets_plain_lines(monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "50")
    board = Dashboard("embed", 10, ["cpu"], sampler=lambda ordinal: None)
    board.live = True  # as on a terminal
    with board:
        assert board.live is False and board._live is None


def test_a_many_sample_run_names_its_sample_in_the_line_and_the_title() -> None:
    from virnucpro.pipeline.report.samples import set_run_context

    clock = FakeClock()
    board = _dashboard(clock, stage_number=1)
    set_run_context("sample 2/5 gut2, 1 done, 0 failed")
    try:
        assert board.status_line().startswith("sample 2/5 gut2, 1 done, 0 failed [esm 1/2] 0/50,000 frames")
        assert "virnucpro sample 2/5 gut2, 1 done, 0 failed: stage 1 of 2: esm" in _rendered(board, 120)
    finally:
        set_run_context(None)
    assert board.status_line().startswith("[esm 1/2] ")


def test_predict_embed_stage_counts_each_model_in_its_closing_line(caplog) -> None:
    """A kept frame is embedded once per model: predict's closing line says what its count counts."""
    caplog.set_level(logging.INFO, logger="virnucpro")
    board = Dashboard("embed", 0, ["cpu"], no_dashboard=True, stage_number=1, weights={"dnabert": 1.0, "esm": 30.0})
    with board:
        board.add_task("shard-00001:dnabert", 7)
        board.add_task("shard-00001:esm", 7)
    closing = [r.getMessage() for r in caplog.records if "finished:" in r.getMessage()][-1]
    assert "0/14 frame embeddings (2 models) in" in closing, closing
