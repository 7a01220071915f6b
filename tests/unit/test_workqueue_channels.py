"""One queue shared by several jobs (SharedFeed + Channel): real workers, toy tasks, jobs on threads."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.toy_workers import assert_squares, toy_manager, write_inputs
from virnucpro.errors import OutputError, ShardsFailedError
from virnucpro.pipeline.workqueue.channels import SharedFeed
from virnucpro.pipeline.workqueue.feed import TaskFeed
from virnucpro.pipeline.workqueue.manager import (
    RunInterrupted,
    RunReport,
    TaskFinished,
    TaskStarted,
    WorkerStarted,
)


class _Job:
    """A job on its own thread: opens a channel, puts its tasks (through a feed another thread
    fills, as translate does), runs the channel and keeps its report, events or error."""

    def __init__(self, shared: SharedFeed, name: str, tasks: list, via_feed: bool = True) -> None:
        self.name, self.tasks, self.via_feed = name, tasks, via_feed
        self.channel = shared.open(name)
        self.events: list[Any] = []
        self.report: RunReport | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        try:
            if self.via_feed:
                feed = TaskFeed()
                producer = threading.Thread(target=lambda: (feed.extend(self.tasks), feed.close()))
                producer.start()
                self.report = self.channel.run(self.events.append, feed)
                producer.join()
            else:
                self.channel.extend(self.tasks)
                self.channel.close()
                self.report = self.channel.run(self.events.append)
        except BaseException as exc:  # noqa: BLE001 - the test looks at it
            self.error = exc


def _serve(shared: SharedFeed, manager: Any, queue_events: list) -> RunReport:
    def on_event(event: Any) -> None:
        queue_events.append(event)
        shared.on_event(event)

    manager.on_event = on_event
    report = manager.run(shared.feed)
    shared.end(report)
    return report


def test_jobs_share_the_workers_each_gets_its_own_tasks_events_and_report(tmp_path: Path) -> None:
    inits, barrier = tmp_path / "inits", tmp_path / "barrier"
    inits.mkdir()
    barrier.mkdir()
    shared = SharedFeed()
    # Slow tasks (10 ms a number): both jobs still wait when the workers report ready.
    sizes_a, sizes_b = {f"t{i}": 20 + i for i in range(4)}, {f"t{i}": 10 + i for i in range(3)}
    a = _Job(shared, "a", write_inputs(tmp_path / "a", sizes_a, dict.fromkeys(sizes_a, "slow"), delay=0.01))
    b = _Job(shared, "b", write_inputs(tmp_path / "b", sizes_b, dict.fromkeys(sizes_b, "slow"), delay=0.01),
             via_feed=False)
    queue_events: list = []
    # The barrier: both workers are ready before either takes a task, while both jobs wait.
    manager = toy_manager(["cpu", "cpu"], [], {"init_dir": str(inits), "barrier_dir": str(barrier),
                                               "barrier_count": 2})
    for job in (a, b):
        job.thread.start()
    closer = threading.Thread(target=lambda: ([j.thread.join() for j in (a, b)], shared.close()))
    closer.start()
    report = _serve(shared, manager, queue_events)
    closer.join()
    assert a.error is None and b.error is None
    assert len(list(inits.iterdir())) == 2  # one model load per device for both jobs
    for job in (a, b):
        assert job.report is not None and job.report.ok
        assert sorted(job.report.finished) == sorted(t.key for t in job.tasks)  # its own keys, as put
        finished = {e.task_key for e in job.events if isinstance(e, TaskFinished)}
        assert finished == {t.key for t in job.tasks}
        for task in job.tasks:
            assert_squares(task)
    assert sorted(report.finished) == sorted([f"a/{t.key}" for t in a.tasks] + [f"b/{t.key}" for t in b.tasks])
    # Each worker's load is reported with its time to one job only; the other sees it kept.
    started = [e for job in (a, b) for e in job.events if isinstance(e, WorkerStarted)]
    assert sorted(e.worker_id for e in started if e.info != {"kept": True}) == [0, 1]
    assert all(e.init_seconds == 0 for e in started if e.info == {"kept": True})


def test_an_earlier_channel_is_served_first_and_a_failed_task_fails_only_its_job(tmp_path: Path) -> None:
    shared = SharedFeed()
    first = shared.open("first")
    second = shared.open("second")
    # The second job's tasks are larger and put first: rank still comes before size.
    second.extend(write_inputs(tmp_path / "s", {"big0": 40, "big1": 41}))
    second.close()
    tasks = write_inputs(tmp_path / "f", {"small": 5, "bad": 6}, modes={"bad": "raise"})
    first.extend(tasks)
    first.close()
    shared.close()
    queue_events: list = []
    _serve(shared, toy_manager(["cpu"], [], in_process=True, max_task_retries=0), queue_events)
    order = [e.task_key for e in queue_events if isinstance(e, TaskStarted)]
    assert order == ["first/bad", "first/small", "second/big1", "second/big0"]
    first_report, second_report = first.run(), second.run()
    assert list(first_report.failed) == ["bad"] and list(first_report.finished) == ["small"]
    with pytest.raises(ShardsFailedError, match="bad"):
        first_report.raise_for_failures("job")
    assert second_report.ok and sorted(second_report.finished) == ["big0", "big1"]


def test_a_stopped_queue_stops_every_waiting_job_and_a_later_one(tmp_path: Path) -> None:
    shared = SharedFeed()
    job = _Job(shared, "a", write_inputs(tmp_path / "a", {"t": 3}))
    job.thread.start()
    shared.end(None, RunInterrupted(signal.SIGTERM))  # what the queue's caller does when it is interrupted
    job.thread.join(10)
    assert isinstance(job.error, RunInterrupted) and job.error.signum == signal.SIGTERM
    late = shared.open("late")
    with pytest.raises(RunInterrupted):
        late.run()


def test_a_write_error_ends_the_shared_queue_and_the_jobs_not_run_fail_with_it(tmp_path: Path) -> None:
    shared = SharedFeed()
    first = shared.open("first")
    first.extend(write_inputs(tmp_path / "f", {"w": 5}, modes={"w": "write_error"}))
    first.close()
    second = shared.open("second")  # never closed: the feed stays open, the queue must end anyway
    second.extend(write_inputs(tmp_path / "s", {"x": 3}))
    report = _serve(shared, toy_manager(["cpu"], [], in_process=True), [])
    assert report.write_error is not None
    with pytest.raises(OutputError, match="No space left"):
        first.run().raise_for_failures("job")
    with pytest.raises(OutputError, match="No space left"):
        second.run()


def test_no_worker_left_fails_the_outstanding_tasks_of_every_job(tmp_path: Path) -> None:
    shared = SharedFeed()
    jobs = [_Job(shared, name, write_inputs(tmp_path / name, {"t": 3})) for name in ("a", "b")]
    for job in jobs:
        job.thread.start()
    closer = threading.Thread(target=lambda: ([j.thread.join() for j in jobs], shared.close()))
    closer.start()
    report = _serve(shared, toy_manager(["cpu"], [], {"init_raises": True}), [])
    closer.join(30)
    assert report.worker_errors
    for job in jobs:
        assert job.error is None and job.report is not None
        assert list(job.report.failed) == ["t"] and "no worker left" in job.report.failed["t"]
