"""BatchQueueManager with real spawned processes and the toy workers in tests/helpers."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
import typing
from pathlib import Path

import pytest

from tests.helpers.toy_workers import IDENTITY, INIT, PROCESS, write_inputs
from tests.helpers.toy_workers import assert_squares as _assert_squares
from tests.helpers.toy_workers import toy_manager as _manager
from virnucpro.errors import EXIT_INTERRUPTED, ShardsFailedError
from virnucpro.pipeline.checkpoint import clean_temporaries, is_temporary, verify_done
from virnucpro.pipeline.workqueue import messages as work_messages
from virnucpro.pipeline.workqueue.manager import (
    BatchQueueManager,
    RunInterrupted,
    Task,
    TaskFailed,
    TaskFinished,
    TaskStarted,
    WorkerDied,
    WorkerRestarted,
    WorkerStarted,
)
from virnucpro.pipeline.workqueue.signals import StopSignals, clear_stop_signal, stop_signal_seen

REPO_ROOT = Path(__file__).resolve().parents[2]


def _alive(pid: int) -> bool:
    """True if ``pid`` runs and is not a zombie (a container's init may not reap orphans)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def test_all_tasks_finish_each_worker_initialises_once(tmp_path: Path) -> None:
    tasks = write_inputs(tmp_path, {f"t{i}": 10 + i for i in range(6)})
    (tmp_path / "inits").mkdir()
    events: list = []
    report = _manager(["cpu", "cpu"], events, {"init_dir": str(tmp_path / "inits")}).run(tasks)
    assert report.ok and sorted(report.finished) == sorted(t.key for t in tasks)
    for task in tasks:
        _assert_squares(task)
    init_pids = {int(p.name) for p in (tmp_path / "inits").iterdir()}
    assert 1 <= len(init_pids) <= 2  # 6 tasks, at most one model load per worker process
    assert {result["pid"] for result in report.finished.values()} <= init_pids
    assert sum(isinstance(e, TaskFinished) for e in events) == len(tasks)
    assert {e.device for e in events if isinstance(e, WorkerStarted)} == {"cpu"}


def test_one_worker_takes_largest_task_first(tmp_path: Path) -> None:
    tasks = write_inputs(tmp_path, {"small": 2, "big": 9, "mid": 5})
    events: list = []
    _manager(["cpu"], events).run(tasks)
    assert [e.task_key for e in events if isinstance(e, TaskStarted)] == ["big", "mid", "small"]


def test_killed_worker_task_requeued_and_worker_restarted(tmp_path: Path) -> None:
    tasks = write_inputs(tmp_path, {"a": 8, "victim": 12, "c": 6}, modes={"victim": "crash_once"})
    events: list = []
    report = _manager(["cpu", "cpu"], events).run(tasks)
    assert report.ok and sorted(report.finished) == ["a", "c", "victim"]
    for task in tasks:
        _assert_squares(task)
    died = [e for e in events if isinstance(e, WorkerDied)]
    assert len(died) == 1 and died[0].task_key == "victim" and died[0].exitcode == -signal.SIGKILL
    assert "SIGKILL" in died[0].reason and died[0].will_restart
    assert any(isinstance(e, WorkerRestarted) for e in events)
    finished_keys = [e.task_key for e in events if isinstance(e, TaskFinished)]
    assert sorted(finished_keys) == ["a", "c", "victim"]  # each exactly once


def test_stalled_worker_is_killed_and_its_task_retried(tmp_path: Path) -> None:
    tasks = write_inputs(tmp_path, {"a": 5, "stuck": 9}, modes={"stuck": "hang_once"})
    events: list = []
    started = time.monotonic()
    report = _manager(["cpu"], events, stall_timeout=2.0, progress_interval=0.1).run(tasks)
    assert report.ok and sorted(report.finished) == ["a", "stuck"]
    assert time.monotonic() - started < 60
    for task in tasks:
        _assert_squares(task)
    died = [e for e in events if isinstance(e, WorkerDied)]
    assert len(died) == 1 and died[0].task_key == "stuck"
    assert "made no progress for 2 s" in died[0].reason and died[0].will_restart


def test_task_that_always_kills_its_worker_fails_others_kept(tmp_path: Path) -> None:
    tasks = write_inputs(tmp_path, {"ok1": 5, "poison": 7, "ok2": 4}, modes={"poison": "exit_always"})
    events: list = []
    report = _manager(["cpu"], events, max_task_retries=1, max_worker_restarts=5).run(tasks)
    assert sorted(report.finished) == ["ok1", "ok2"]
    assert list(report.failed) == ["poison"] and "exit code 137" in report.failed["poison"]
    attempts = [e for e in events if isinstance(e, TaskFailed) and e.task_key == "poison"]
    assert [e.will_retry for e in attempts] == [True, False]
    for task in tasks:
        if task.key != "poison":
            _assert_squares(task)
    assert not Path(tasks[1].payload["output"]).exists()
    with pytest.raises(ShardsFailedError, match="poison") as info:
        report.raise_for_failures("esm")
    assert str(info.value).startswith("esm: 1 task(s) failed") and "\n" not in str(info.value)


def test_worker_restart_limit_gives_up_on_the_device(tmp_path: Path) -> None:
    tasks = write_inputs(tmp_path, {"p1": 3, "p2": 2}, modes={"p1": "exit_always", "p2": "exit_always"})
    report = _manager(["cpu"], [], max_task_retries=5, max_worker_restarts=1).run(tasks)
    assert sorted(report.failed) == ["p1", "p2"] and not report.finished
    assert "gave up after 1 restart" in report.worker_errors["worker cpu-0"]


def test_exception_in_task_is_reported_and_worker_lives_on(tmp_path: Path) -> None:
    tasks = write_inputs(tmp_path, {"bad": 9, "good": 3}, modes={"bad": "raise"})
    events: list = []
    report = _manager(["cpu"], events, max_task_retries=1).run(tasks)
    assert report.finished.keys() == {"good"}
    assert report.failed == {"bad": "ValueError: bad number in bad"}
    assert not any(isinstance(e, (WorkerDied, WorkerRestarted)) for e in events)
    assert len({e.pid for e in events if isinstance(e, WorkerStarted)}) == 1


def test_init_failure_fails_tasks_without_restart_loop(tmp_path: Path) -> None:
    tasks = write_inputs(tmp_path, {"a": 2})
    events: list = []
    report = _manager(["cpu"], events, {"init_raises": True}).run(tasks)
    assert "cannot load the model" in report.failed["a"]
    assert "cannot load the model" in report.worker_errors["worker cpu-0"]
    assert not any(isinstance(e, WorkerRestarted) for e in events)


def test_in_process_mode_gives_same_outputs_and_events(tmp_path: Path) -> None:
    sizes = {"x": 6, "y": 11, "bad": 2}
    spawned = write_inputs(tmp_path / "spawned", sizes, modes={"bad": "raise"})
    inproc = write_inputs(tmp_path / "inproc", sizes, modes={"bad": "raise"})
    ev_spawned: list = []
    ev_inproc: list = []
    r1 = _manager(["cpu"], ev_spawned, max_task_retries=0).run(spawned)
    r2 = _manager(["cpu"], ev_inproc, max_task_retries=0, in_process=True).run(inproc)
    assert r1.failed == r2.failed and r1.finished.keys() == r2.finished.keys()
    for a, b in zip(spawned, inproc):
        if a.key != "bad":
            assert Path(a.payload["output"]).read_text() == Path(b.payload["output"]).read_text()
    assert r2.finished["x"]["pid"] == os.getpid()

    def shape(events):
        return [(type(e).__name__, getattr(e, "task_key", None)) for e in events if not type(e).__name__ == "Progress"]

    assert shape(ev_spawned) == shape(ev_inproc)


def test_broken_event_callback_does_not_stop_the_run(tmp_path: Path) -> None:
    tasks = write_inputs(tmp_path, {"a": 3})

    def explode(event):
        raise RuntimeError("dashboard bug")

    report = BatchQueueManager(INIT, PROCESS, ["cpu"], on_event=explode, in_process=True).run(tasks)
    assert report.ok


def test_bad_arguments_are_refused_early(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="module-level"):
        BatchQueueManager(lambda d, a: None, PROCESS, ["cpu"])
    with pytest.raises(ValueError, match="at least one device"):
        BatchQueueManager(INIT, PROCESS, [])
    with pytest.raises(ValueError, match="duplicate task key"):
        BatchQueueManager(INIT, PROCESS, ["cpu"], in_process=True).run([Task("a", 1), Task("a", 2)])
    assert BatchQueueManager(INIT, PROCESS, ["cpu"]).run([]).ok


def _start_script(out_dir: Path, n_workers: int) -> subprocess.Popen:
    out_dir.mkdir()
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-m", "tests.helpers.run_manager", str(out_dir), str(n_workers)],
                            cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while not (out_dir / "started").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"manager script did not start: {proc.communicate()[0].decode()}")
        time.sleep(0.05)
    return proc


def _worker_pids(out_dir: Path) -> list[int]:
    return [int(line) for line in (out_dir / "pids").read_text().split()]


def _wait_dead(pids: list[int], seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.05)
    return [p for p in pids if _alive(p)]


@pytest.mark.parametrize(("signum", "n_workers"), [(signal.SIGTERM, 2), (signal.SIGINT, 2), (signal.SIGTERM, 0)])
def test_signal_stops_run_quickly_and_leaves_no_fake_results(tmp_path: Path, signum: int, n_workers: int) -> None:
    out_dir = tmp_path / "run"
    proc = _start_script(out_dir, n_workers)
    pids = _worker_pids(out_dir)
    sent = time.monotonic()
    proc.send_signal(signum)
    try:
        output = proc.communicate(timeout=15)[0].decode()
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert proc.returncode == EXIT_INTERRUPTED, output
    assert time.monotonic() - sent < 8
    assert "Traceback" not in output
    assert _wait_dead(pids, 5) == []
    for out in out_dir.glob("*.out"):
        pytest.fail(f"an unfinished task left a result: {out}")
    for leftover in out_dir.iterdir():
        assert not verify_done(leftover, IDENTITY)
    clean_temporaries(out_dir)
    assert not [p for p in out_dir.iterdir() if is_temporary(p)]


def test_killed_parent_takes_its_workers_down(tmp_path: Path) -> None:
    out_dir = tmp_path / "run"
    proc = _start_script(out_dir, 1)
    pids = _worker_pids(out_dir)
    proc.kill()
    proc.wait(timeout=10)
    assert _wait_dead(pids, 5) == []


def _one_of_each_message() -> list:
    task = Task("shard-00001:esm", 3, {"input": "a.fa"})
    return [
        work_messages.RunTask(task), work_messages.StopWorker(), work_messages.CancelTask(task.key),
        work_messages.WorkerReady(123, 1.5), work_messages.WorkerInitFailed("OSError: no model", "Traceback..."),
        work_messages.TaskBegun(task.key), work_messages.TaskWithdrawn(task.key), work_messages.FramesDone(task.key, 2),
        work_messages.TaskDone(task.key, {"frames": 3}, 0.25),
        work_messages.TaskRaised(task.key, "OutputError: disk full", "Traceback...", "disk full"),
        work_messages.ForwardedLog("virnucpro.models.esm2", 20, "loaded"),
    ]


def test_every_pipe_message_crosses_a_real_pipe_unchanged() -> None:
    messages = _one_of_each_message()
    kinds = set(typing.get_args(work_messages.ToWorker)) | set(typing.get_args(work_messages.FromWorker))
    assert {type(m) for m in messages} == kinds  # one of each kind the protocol has
    parent, child = multiprocessing.get_context("spawn").Pipe(duplex=True)
    try:
        for message in messages:
            child.send(message)
            assert parent.recv() == message
    finally:
        parent.close()
        child.close()


def test_stop_signals_record_the_first_signal_raise_on_the_second_and_restore_handlers() -> None:
    clear_stop_signal()
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with StopSignals(raise_at_once=False) as signals:
        # Installed (else the signal below would end pytest):
        assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, before[signal.SIGTERM])
        signal.raise_signal(signal.SIGTERM)
        assert signals.signum == signal.SIGTERM
        with pytest.raises(RunInterrupted) as info:
            signal.raise_signal(signal.SIGINT)
        assert info.value.signum == signal.SIGINT and isinstance(info.value, KeyboardInterrupt)
    assert {s: signal.getsignal(s) for s in before} == before
    # Recorded for the whole process, so a caller can still see it after the run returned.
    assert stop_signal_seen() == signal.SIGTERM
    clear_stop_signal()
    assert stop_signal_seen() is None


def test_stop_signals_raise_at_once_in_process_mode() -> None:
    clear_stop_signal()
    default = signal.getsignal(signal.SIGINT)
    with StopSignals(raise_at_once=True), pytest.raises(RunInterrupted, match="SIGINT"):
        assert signal.getsignal(signal.SIGINT) is not default
        signal.raise_signal(signal.SIGINT)
    assert stop_signal_seen() == signal.SIGINT
    clear_stop_signal()
