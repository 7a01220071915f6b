"""keep_workers: a manager's second run uses the workers (or in-process state) of its first."""

from __future__ import annotations

import os
from pathlib import Path

import psutil

from tests.helpers.toy_workers import assert_squares, toy_manager, write_inputs
from virnucpro.pipeline.workqueue.manager import TaskFinished, WorkerStarted


def _two_runs(tmp_path: Path, devices: list[str], in_process: bool) -> tuple[list, list, set[int]]:
    inits, barrier = tmp_path / "inits", tmp_path / "barrier"
    inits.mkdir()
    barrier.mkdir()
    first, second = [], []
    # The barrier: every worker is loaded before any takes a task, so each is there in the first run.
    init_args = {"init_dir": str(inits), "barrier_dir": str(barrier), "barrier_count": len(devices)}
    manager = toy_manager(devices, first, init_args, in_process=in_process, keep_workers=True)
    try:
        tasks_a = write_inputs(tmp_path / "a", {f"a{i}": 20 + i for i in range(4)})
        manager.run(tasks_a).raise_for_failures("a")
        manager.on_event = second.append
        tasks_b = write_inputs(tmp_path / "b", {f"b{i}": 10 + i for i in range(3)})
        manager.run(tasks_b).raise_for_failures("b")
        for task in tasks_a + tasks_b:
            assert_squares(task)
        pids = {int(p.name) for p in inits.iterdir()}
    finally:
        manager.close()
    return first, second, pids


def test_spawned_workers_load_once_across_runs_and_close_stops_them(tmp_path: Path) -> None:
    first, second, pids = _two_runs(tmp_path, ["cpu", "cpu"], in_process=False)
    assert len(pids) == 2  # one init per device for both runs
    started = [e for e in second if isinstance(e, WorkerStarted)]
    # Every worker of the second run is one of the first's (no init beyond one per device); a worker
    # whose ready message came after the first run's last task is reported ready in the second.
    assert {e.pid for e in started} <= pids and len(started) == len({e.pid for e in started})
    assert any(e.info == {"kept": True} and e.init_seconds == 0 for e in started)
    assert {e.result["pid"] for e in second if isinstance(e, TaskFinished)} <= pids
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE for pid in pids)


def test_in_process_state_is_kept_across_runs(tmp_path: Path) -> None:
    first, second, pids = _two_runs(tmp_path, ["cpu"], in_process=True)
    assert pids == {os.getpid()}
    assert len([e for e in first if isinstance(e, WorkerStarted)]) == 1
    assert [e.info for e in second if isinstance(e, WorkerStarted)] == [{"kept": True}]


def test_without_keep_workers_each_run_starts_its_own(tmp_path: Path) -> None:
    inits = tmp_path / "inits"
    inits.mkdir()
    manager = toy_manager(["cpu"], [], {"init_dir": str(inits)})
    manager.run(write_inputs(tmp_path / "a", {"a": 5})).raise_for_failures("a")
    manager.run(write_inputs(tmp_path / "b", {"b": 5})).raise_for_failures("b")
    assert len(list(inits.iterdir())) == 2
