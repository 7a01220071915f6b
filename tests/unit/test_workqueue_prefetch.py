"""Queue depth 2 (``prefetch``) with real spawned workers: the next shard is read while one computes,
its predecessor written while the next computes, and every guarantee of the queue still holds.

The pipelined toy workers (tests/helpers/toy_workers.py) record when each phase of each task ran.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.toy_workers import (
    IDENTITY,
    PREFETCH,
    assert_squares,
    phase,
    pipelined_manager,
    write_inputs,
)
from virnucpro.errors import EXIT_INTERRUPTED, OutputError
from virnucpro.pipeline.checkpoint import clean_temporaries, verify_done
from virnucpro.pipeline.workqueue.manager import (
    PREFETCH_ENV,
    BatchQueueManager,
    Task,
    TaskFailed,
    TaskFinished,
    TaskStarted,
    WorkerStarted,
    default_prefetch,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


def _tasks(directory: Path, sizes: dict[str, int], modes: dict[str, str] | None = None, **payload: object) -> list[Task]:
    timeline = directory / "timeline"
    timeline.mkdir(parents=True, exist_ok=True)
    tasks = write_inputs(directory, sizes, modes)
    return [Task(t.key, t.size, {**t.payload, "timeline": str(timeline), **payload}) for t in tasks]


def _finished_once(events: list, tasks: list[Task]) -> None:
    finished = [e.task_key for e in events if isinstance(e, TaskFinished)]
    assert sorted(finished) == sorted(t.key for t in tasks)  # each exactly once
    for task in tasks:
        assert_squares(task)


def test_next_task_is_prepared_while_one_computes_and_written_while_the_next_computes(tmp_path: Path) -> None:
    sizes = {"t1": 30, "t2": 20, "t3": 10}
    tasks = _tasks(tmp_path, sizes, dict.fromkeys(sizes, "slow"), delay=0.03, prefetch_delay=0.3, write_delay=0.6)
    events: list = []
    seen_at_finish: dict[str, bool] = {}

    def on_event(event: object) -> None:
        events.append(event)
        if isinstance(event, TaskFinished):  # later stages read the file as soon as this arrives
            seen_at_finish[event.task_key] = verify_done(tmp_path / f"{event.task_key}.out", IDENTITY)

    manager = pipelined_manager(["cpu"], [], progress_interval=0.05)
    manager.on_event = on_event
    report = manager.run(tasks)
    assert report.ok, report.failed
    _finished_once(events, tasks)
    assert seen_at_finish == dict.fromkeys(sizes, True)
    timeline = tmp_path / "timeline"
    for current, following in (("t1", "t2"), ("t2", "t3")):
        compute = phase(timeline, current, "compute")
        ahead = phase(timeline, following, "prefetch")
        assert ahead[0] < compute[1], "the next task was not prepared while this one computed"
        write = phase(timeline, current, "write")
        next_compute = phase(timeline, following, "compute")
        assert write[0] < next_compute[1] and next_compute[0] < write[1], "the write did not overlap the next compute"
    assert [e.task_key for e in events if isinstance(e, TaskStarted)] == ["t1", "t2", "t3"]  # largest first


def test_prefetch_zero_runs_each_phase_in_turn(tmp_path: Path) -> None:
    sizes = {"t1": 12, "t2": 10}
    tasks = _tasks(tmp_path, sizes, dict.fromkeys(sizes, "slow"), delay=0.02, prefetch_delay=0.2, write_delay=0.3)
    events: list = []
    report = pipelined_manager(["cpu"], events, prefetch=0).run(tasks)
    assert report.ok, report.failed
    _finished_once(events, tasks)
    timeline = tmp_path / "timeline"
    assert phase(timeline, "t2", "prefetch")[0] >= phase(timeline, "t1", "write")[1]


def test_killed_worker_holding_two_tasks_both_complete_exactly_once(tmp_path: Path) -> None:
    """SIGKILL while task 1 is being written, task 2 computes and task 3 waits: none is lost or doubled."""
    sizes = {"t1": 40, "t2": 30, "t3": 20, "t4": 10}
    tasks = _tasks(tmp_path, sizes, dict.fromkeys(sizes, "slow"), delay=0.02, write_delay=1.5)
    events: list = []
    pids: list[int] = []

    def on_event(event: object) -> None:
        events.append(event)
        if isinstance(event, WorkerStarted):
            pids.append(event.pid)
        elif isinstance(event, TaskStarted) and event.task_key == "t2" and len(pids) == 1:
            os.kill(pids[0], signal.SIGKILL)

    manager = pipelined_manager(["cpu"], [], progress_interval=0.05)
    manager.on_event = on_event
    report = manager.run(tasks)
    assert report.ok, report.failed
    _finished_once(events, tasks)
    failed = {e.task_key for e in events if isinstance(e, TaskFailed)}
    assert failed == {"t1", "t2"}  # the two it had begun (t1 was still being written)
    starts = [(e.task_key, e.attempt) for e in events if isinstance(e, TaskStarted)]
    assert ("t3", 1) in starts and ("t3", 2) not in starts  # sent ahead, never begun: not charged


def test_device_fault_with_a_task_sent_ahead_gives_that_task_back_uncharged(tmp_path: Path, caplog) -> None:
    sizes = {"t1": 30, "t2": 20, "t3": 10}
    # t1 and t2 fault at 0.3 s on their first run. Which worker holds which task, and which
    # task is sent ahead to whom, depends on which worker reports ready first; in every order a
    # worker faults while holding a task sent ahead, before an idle worker could ask it back.
    tasks = _tasks(tmp_path, sizes, {"t1": "device_error_once", "t2": "device_error_once", "t3": "slow"},
                   delay=0.05, fault_delay=0.3)
    (tmp_path / "barrier").mkdir()
    events: list = []
    caplog.set_level(logging.DEBUG, logger="virnucpro.pipeline.workqueue")
    # No retries: any attempt charged for the broken device, or for a task sent ahead, fails a task for good.
    report = pipelined_manager(["cpu", "cpu"], events, {"barrier_dir": str(tmp_path / "barrier"), "barrier_count": 2},
                               max_task_retries=0, progress_interval=0.05).run(tasks)
    assert report.ok, report.failed
    _finished_once(events, tasks)
    faults = [e for e in events if isinstance(e, TaskFailed)]
    assert sorted(f.task_key for f in faults) == ["t1", "t2"]
    assert all("illegal memory access" in f.error and f.will_retry for f in faults)
    assert all(e.attempt == 1 for e in events if isinstance(e, TaskStarted))
    given_back = [r.getMessage() for r in caplog.records if "sent ahead" in r.getMessage()]
    assert any(m.startswith(f"worker cpu-{f.worker_id}:") for f in faults for m in given_back), given_back


def test_queued_task_is_asked_back_for_an_idle_worker(tmp_path: Path) -> None:
    """Worker 0 holds a long task and one sent ahead; worker 1 runs out of work and takes the latter."""
    sizes = {"long": 60, "b": 5, "c": 4, "d": 3}
    tasks = _tasks(tmp_path, sizes, dict.fromkeys(sizes, "slow"), delay=0.05)
    (tmp_path / "barrier").mkdir()
    events: list = []
    report = pipelined_manager(["cpu", "cpu"], events, {"barrier_dir": str(tmp_path / "barrier"), "barrier_count": 2},
                               progress_interval=0.05).run(tasks)
    assert report.ok, report.failed
    _finished_once(events, tasks)
    ran_on = {e.task_key: e.worker_id for e in events if isinstance(e, TaskStarted)}
    long_worker = ran_on["long"]
    assert all(worker != long_worker for key, worker in ran_on.items() if key != "long")
    finished = [e.task_key for e in events if isinstance(e, TaskFinished)]
    assert finished[-1] == "long"


def test_write_error_in_the_background_still_stops_the_queue(tmp_path: Path) -> None:
    sizes = {"t1": 20, "t2": 15, "t3": 10, "t4": 5}
    tasks = _tasks(tmp_path, sizes, {"t1": "write_error", "t2": "slow", "t3": "slow", "t4": "slow"}, delay=0.03,
                   write_delay=0.2)
    events: list = []
    report = pipelined_manager(["cpu"], events, progress_interval=0.05).run(tasks)
    assert report.write_error is not None and "No space left" in report.write_error
    assert list(report.failed) == ["t1"]
    assert "t4" in report.not_run  # never handed out
    assert set(report.finished) | set(report.not_run) == {"t2", "t3", "t4"}
    assert not (tmp_path / "t1.out").exists()
    for key in report.finished:
        assert verify_done(tmp_path / f"{key}.out", IDENTITY)
    with pytest.raises(OutputError, match="No space left"):
        report.raise_for_failures("toy")


def test_prefetch_error_is_the_task_failure_and_is_retried(tmp_path: Path) -> None:
    sizes = {"t1": 10, "t2": 8}
    tasks = _tasks(tmp_path, sizes, {"t1": "slow", "t2": "prefetch_raise_once"}, delay=0.05)
    events: list = []
    report = pipelined_manager(["cpu"], events, progress_interval=0.05).run(tasks)
    assert report.ok, report.failed
    _finished_once(events, tasks)
    failure = next(e for e in events if isinstance(e, TaskFailed))
    assert failure.task_key == "t2" and "cannot read" in failure.error and failure.will_retry


def test_in_process_mode_runs_the_pipelined_functions_in_turn(tmp_path: Path) -> None:
    sizes = {"t1": 6, "t2": 4}
    tasks = _tasks(tmp_path, sizes)
    events: list = []
    report = pipelined_manager(["cpu"], events, in_process=True).run(tasks)
    assert report.ok
    _finished_once(events, tasks)


def test_prefetch_setting_from_the_environment(monkeypatch) -> None:
    monkeypatch.delenv(PREFETCH_ENV, raising=False)
    assert default_prefetch() == 1
    monkeypatch.setenv(PREFETCH_ENV, "0")
    assert default_prefetch() == 0
    assert BatchQueueManager("tests.helpers.toy_workers:square_init", PREFETCH, ["cpu"]).prefetch == 0
    monkeypatch.setenv(PREFETCH_ENV, "two")
    with pytest.raises(ValueError, match=PREFETCH_ENV):
        default_prefetch()


def test_sigint_with_two_outstanding_tasks_stops_cleanly_and_a_rerun_completes(tmp_path: Path) -> None:
    out_dir = tmp_path / "run"
    out_dir.mkdir()
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    command = [sys.executable, "-m", "tests.helpers.run_manager", str(out_dir), "1", "pipelined"]
    proc = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while not (out_dir / "began-t1").exists():  # t0 is being written, t1 computes, t2 was sent ahead
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"manager script did not get to its second task: {proc.communicate()[0].decode()}")
        time.sleep(0.02)
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    try:
        output = proc.communicate(timeout=20)[0].decode()
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert proc.returncode == EXIT_INTERRUPTED, output
    assert time.monotonic() - sent < 8
    assert "Traceback" not in output
    for out in out_dir.glob("*.out"):  # t0 finished its write, or left only a temporary
        assert out.name == "t0.out" and verify_done(out, IDENTITY), out
    assert not (out_dir / "t1.out").exists()
    clean_temporaries(out_dir)
    rerun = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, timeout=120)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    for key in ("t0", "t1", "t2", "t3"):
        assert (out_dir / f"{key}.out").read_text().split() == [str(i * i) for i in range(200)]
        assert verify_done(out_dir / f"{key}.out", IDENTITY)
