"""BatchQueueManager fed by a producer thread (TaskFeed): real spawned workers, toy tasks."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from tests.helpers.toy_workers import assert_squares, toy_manager, write_inputs
from virnucpro.pipeline.workqueue.feed import FeedCancelled, TaskFeed
from virnucpro.pipeline.workqueue.manager import TaskFinished, TaskStarted


def _produce(feed: TaskFeed, tasks: list, gap: float, begun: list[float], errors: list[BaseException]) -> None:
    try:
        for task in tasks:
            time.sleep(gap)
            feed.put(task)
            begun.append(time.monotonic())
    except BaseException as exc:  # noqa: BLE001 - reported to the test
        errors.append(exc)
    finally:
        feed.close()


@pytest.mark.parametrize("devices", [["cpu"], ["cpu", "cpu"]])
def test_tasks_added_while_running_all_finish_and_run_before_the_feed_closes(tmp_path: Path, devices) -> None:
    tasks = write_inputs(tmp_path, {f"t{i}": 20 + i for i in range(5)})
    feed = TaskFeed(expected=len(tasks))
    events: list = []
    put_at: list[float] = []
    errors: list[BaseException] = []
    producer = threading.Thread(target=_produce, args=(feed, tasks, 0.4, put_at, errors))
    started_at: dict[str, float] = {}

    def record(event) -> None:
        events.append(event)
        if isinstance(event, TaskStarted):
            started_at[event.task_key] = time.monotonic()

    manager = toy_manager(devices, [])
    manager.on_event = record
    producer.start()
    report = manager.run(feed)
    producer.join()
    assert not errors
    assert report.ok and sorted(report.finished) == sorted(t.key for t in tasks)
    for task in tasks:
        assert_squares(task)
    # The first task ran while the producer was still adding the others.
    assert started_at["t0"] < put_at[-1]
    assert sum(isinstance(e, TaskFinished) for e in events) == len(tasks)


def test_in_process_mode_reads_the_feed(tmp_path: Path) -> None:
    tasks = write_inputs(tmp_path, {f"t{i}": 10 for i in range(3)})
    feed = TaskFeed()
    errors: list[BaseException] = []
    producer = threading.Thread(target=_produce, args=(feed, tasks, 0.2, [], errors))
    producer.start()
    report = toy_manager(["cpu"], [], in_process=True).run(feed)
    producer.join()
    assert not errors and report.ok and len(report.finished) == 3


def test_empty_closed_feed_returns_at_once(tmp_path: Path) -> None:
    feed = TaskFeed()
    feed.close()
    report = toy_manager(["cpu"], []).run(feed)
    assert report.ok and not report.finished


def test_no_worker_left_cancels_the_feed_and_fails_its_tasks(tmp_path: Path) -> None:
    tasks = write_inputs(tmp_path, {"t0": 5, "t1": 5})
    feed = TaskFeed()
    feed.put(tasks[0])
    # init_fn raises in every worker: nothing can run; the producer learns it on its next put.
    report = toy_manager(["cpu"], [], {"init_raises": True}).run(feed)
    assert "t0" in report.failed
    with pytest.raises(FeedCancelled):
        feed.put(tasks[1])


def test_put_after_close_is_refused() -> None:
    feed = TaskFeed()
    feed.close()
    with pytest.raises(ValueError):
        feed.put(object())  # type: ignore[arg-type]
