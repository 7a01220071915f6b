"""Embed shards with every model kind on the planned devices: one queue, one worker per device.

Each shard without a verified feature file of a kind becomes one task for
:class:`~virnucpro.pipeline.workqueue.manager.BatchQueueManager`; the tasks of all kinds
share one queue and one worker process per device (:mod:`virnucpro.pipeline.workers`:
both models loaded and warmed up once, before the first task). :func:`feature_stage`
takes the shards as a list; :class:`FeatureQueue` also takes them one at a time while
the queue runs (:mod:`.stream`: a shard's tasks are queued as soon as translate wrote
it, so ESM-2 embeds shard 1 while later shards are translated and embedded).

Order: the costliest task first (frames x the kind's relative cost per frame, see
:func:`~virnucpro.pipeline.report.dashboard.relative_costs`), ties in the order queued;
a task sent ahead to a busy worker is given back to an idle one (the queue's
rebalancing), so at the end no worker waits while another holds a task it has not begun.

A many-sample run (:func:`one_queue`) has one queue for all its samples: the main thread
serves it (:class:`SampleQueue`) and each sample's :class:`FeatureQueue`, on the sample's
thread, puts its tasks on it through a channel (:mod:`~virnucpro.pipeline.workqueue.channels`)
and waits for them there, so the stage's code is the same in both.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from virnucpro.errors import UsageError
from virnucpro.pipeline.checkpoint import make_dir, verify_done
from virnucpro.pipeline.model_kinds import MODEL_KINDS, EmbedPayload, ModelKind
from virnucpro.pipeline.outputs import shard_name
from virnucpro.pipeline.report.dashboard import Dashboard, relative_costs
from virnucpro.pipeline.report.summary import RunState, StageReport, WorkerReport
from virnucpro.pipeline.run.config import RunSetup
from virnucpro.pipeline.run.stop import signal_at
from virnucpro.pipeline.stages.work_files import ShardInfo
from virnucpro.pipeline.workers import run_init_args
from virnucpro.pipeline.workqueue.channels import Channel, SharedFeed
from virnucpro.pipeline.workqueue.feed import TaskFeed
from virnucpro.pipeline.workqueue.manager import (
    BatchQueueManager,
    Event,
    Task,
    TaskFinished,
    TaskStarted,
    WorkerRestarted,
    WorkerStarted,
)

logger = logging.getLogger(__name__)

RUN_WORKER = "virnucpro.pipeline.workers:init_run_worker"
RUN_PROCESS = "virnucpro.pipeline.workers:embed_run_shard"
RUN_PREFETCH = "virnucpro.pipeline.workers:prefetch_run_shard"
DEVICE_CHECK = "virnucpro.pipeline.report.gpu_monitor:device_health"
MAX_RESTARTS_PER_KIND = 3

_SHARED: list[SampleQueue] = []


class SampleQueue:
    """One work queue for every sample of a many-sample run (:mod:`virnucpro.pipeline.many_samples`).

    The main thread calls :meth:`serve`; each sample's :class:`FeatureQueue`, on the sample's
    own thread, embeds through a channel of its :class:`~virnucpro.pipeline.workqueue.channels.SharedFeed`
    named after the sample's folder. The first sample to embed hands over the manager and the
    dashboard the main thread runs (the same options give every sample the same devices, models
    and queue settings; a sample whose differ is refused). ``ranks``: sample name -> its place in
    the run (a lower rank's tasks are handed out first); ``on_fed(name)`` is called once a sample
    has put all its tasks on the queue.
    """

    def __init__(self, on_fed: Callable[[str], None] | None = None) -> None:
        self.shared = SharedFeed()
        self.dashboard: Dashboard | None = None
        self.ranks: dict[str, int] = {}
        self._on_fed = on_fed
        self._lock = threading.Lock()
        self._key: str | None = None
        self._start: queue.SimpleQueue[tuple[BatchQueueManager, Dashboard]] = queue.SimpleQueue()

    def channel(self, name: str, key: str, make: Callable[[], tuple[BatchQueueManager, Dashboard]]) -> Channel:
        """The channel of sample ``name``; ``key`` names its devices and settings, ``make`` builds the
        queue's manager and dashboard (called for the first sample only)."""
        with self._lock:
            if self._key is None:
                self._key = key
                manager, self.dashboard = make()
                self._start.put((manager, self.dashboard))
            elif key != self._key:
                raise UsageError(f"{name}: its devices or model settings differ from the run's first sample's; "
                                 f"run it separately")
        on_fed = self._on_fed
        return self.shared.open(name, self.ranks.get(name), None if on_fed is None else lambda: on_fed(name))

    def serve(self, finished: threading.Event) -> None:
        """In the main thread: once a sample asks for the queue, run it until :meth:`close` was called
        and every task is done; return at once if ``finished`` is set before any sample asked.

        Raises:
            RunInterrupted: SIGINT/SIGTERM (the channels waiting raise it too).
        """
        while True:
            try:
                manager, dashboard = self._start.get(timeout=0.2)
                break
            except queue.Empty:
                if finished.is_set():
                    return

        def on_event(event: Event) -> None:
            dashboard.handle(event)
            self.shared.on_event(event)

        manager.on_event = on_event
        report, error = None, None
        try:
            with dashboard:
                report = manager.run(self.shared.feed)
        except BaseException as exc:
            error = exc
            raise
        finally:
            self.shared.end(report, error)

    def close(self) -> None:
        """No sample will put tasks any more: the queue ends once the tasks put are done."""
        self.shared.close()


@contextmanager
def one_queue(on_fed: Callable[[str], None] | None = None) -> Iterator[SampleQueue]:
    """Within the block, every :class:`FeatureQueue` embeds on the one :class:`SampleQueue` yielded."""
    sample_queue = SampleQueue(on_fed)
    _SHARED.append(sample_queue)
    try:
        yield sample_queue
    finally:
        _SHARED.remove(sample_queue)
        sample_queue.shared.end(None, None)  # wakes any sample still waiting (it then fails)


def feature_stage(kinds: ModelKind | Sequence[ModelKind], shards: list[ShardInfo], setup: RunSetup,
                  state: RunState, on_shard_done: Callable[[ModelKind, ShardInfo], None] | None = None) -> None:
    """Embed every shard of ``shards`` that lacks a verified feature file of one of ``kinds``.

    Args:
        on_shard_done: called in this process with the kind and the shard as soon as
            that feature file is written (not for reused ones); its exceptions are logged, not raised.
    """
    queue = FeatureQueue((kinds,) if isinstance(kinds, ModelKind) else tuple(kinds), setup, state, on_shard_done)
    tasks = [task for shard in shards for task in queue.tasks_for(shard)]
    queue.log_reused()
    if tasks:
        queue.run(tasks)


class FeatureQueue:
    """The embedding of shards by ``kinds`` on the planned devices, with each kind's stage report
    and each worker's report (``state.workers``).

    :meth:`tasks_for` turns a shard into its tasks (none for a kind whose feature file
    verifies); :meth:`run` runs a task list or a :class:`TaskFeed` filled (by another thread,
    through :meth:`tasks_for`) while the queue runs.
    """

    def __init__(self, kinds: Sequence[ModelKind], setup: RunSetup, state: RunState,
                 on_shard_done: Callable[[ModelKind, ShardInfo], None] | None = None) -> None:
        self.kinds, self.setup, self.state, self.on_shard_done = tuple(kinds), setup, state, on_shard_done
        self.began = time.monotonic()
        self.reports = {kind.name: state.stages.setdefault(kind.name, StageReport()) for kind in self.kinds}
        self.costs = relative_costs(dict(setup.models.identities))
        self._lock = threading.Lock()
        self._open: dict[str, tuple[ModelKind, ShardInfo]] = {}  # task key -> kind, shard (not finished)
        self._left = {kind.name: 0 for kind in self.kinds}  # tasks of each kind not finished
        self._feed: TaskFeed | None = None
        self._dashboard: Dashboard | None = None
        self.total = 0

    def tasks_for(self, shard: ShardInfo) -> list[Task]:
        """The tasks embedding ``shard`` with each kind whose feature file does not verify
        (a verified one is counted as reused)."""
        return [task for task in (self.task_for(kind, shard) for kind in self.kinds) if task is not None]

    def task_for(self, kind: ModelKind, shard: ShardInfo) -> Task | None:
        """The task embedding ``shard`` with ``kind``, or None (counted as reused) when its feature file verifies."""
        paths = self.setup.paths
        target = kind.features(paths, shard.index)
        identity = self.setup.config.feature_identity(kind, kind.inputs_sha256(paths, shard.index))
        if verify_done(target, identity):
            self.reports[kind.name].reused_shards += 1
            return None
        payload = EmbedPayload(str(kind.source(paths, shard.index)), str(target), identity,
                               str(kind.reuse(paths, shard.index)), model=kind.name)
        key = f"{shard_name(shard.index)}:{kind.name}"
        with self._lock:
            self._open[key] = (kind, shard)
            self._left[kind.name] += 1
            self.total += shard.frames
            if self._dashboard is not None:
                self._dashboard.add_task(key, shard.frames)
        # Task.payload is annotated as a dict in workqueue; any picklable object travels.
        return Task(key, shard.frames, payload, cost=shard.frames * self.costs.get(kind.name, 1.0))  # type: ignore[arg-type]

    def log_reused(self) -> None:
        for name, report in self.reports.items():
            if report.reused_shards:
                logger.info("%s: reusing %d verified shard(s)", name, report.reused_shards)

    def run(self, tasks: list[Task] | TaskFeed, expected_shards: int | None = None) -> None:
        """Embed ``tasks`` (a feed: as they arrive, starting no more workers than ``expected_shards``
        before they do); raises what :meth:`RunReport.raise_for_failures` raises. Inside
        :func:`one_queue` the tasks go to the run's one queue instead (a sample of a many-sample run)."""
        setup = self.setup
        plan, options = setup.plan, setup.options
        make_dir(setup.paths.features_dir)
        devices = plan.devices
        shared = _SHARED[-1] if _SHARED else None
        shards = len({t.key.split(":")[0] for t in tasks}) if isinstance(tasks, list) else expected_shards
        if shards is not None and not plan.in_process and len(devices) > shards and shared is None:
            # Planned from the shards there are: a worker without a shard of its own only loads the
            # models and halves the others' CPU threads (measured: 3.6x slower on one shard).
            logger.info("embed: %d shard(s) to embed: starting %d of the %d planned workers", shards,
                        max(1, shards), len(devices))
            devices = devices[:max(1, shards)]
        names = "+".join(kind.label for kind in self.kinds)
        if isinstance(tasks, list):
            logger.info("embed: %s on %d frame(s) in %d task(s) on %s", names, self.total, len(tasks),
                        ", ".join(devices))
        else:
            self._feed = tasks
            logger.info("embed: %s on %s, each shard as soon as it is translated", names, ", ".join(devices))
        for kind in self.kinds:
            self.state.mark(kind.name, "start")
        whole_run = set(self.kinds) == set(MODEL_KINDS)  # predict's stage 1 (training embeds kind by kind)
        init_args = {kind.name: kind.init_args(setup.models, plan.precision, options.batch_tokens,
                                               options.compile) for kind in self.kinds}
        settings: dict[str, Any] = dict(
            in_process=plan.in_process,
            worker_env={"PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True"},
            stall_timeout=options.stall_timeout or None,
            # The restart budget of the one worker per device is the per-stage budgets it replaces, summed.
            max_worker_restarts=MAX_RESTARTS_PER_KIND * len(self.kinds),
            prefetch_fn=RUN_PREFETCH,
            device_check=DEVICE_CHECK if any(d.startswith("cuda") for d in devices) else None,
        )

        def make_manager() -> BatchQueueManager:
            return BatchQueueManager(RUN_WORKER, RUN_PROCESS, devices, run_init_args(init_args), **settings)

        def make_dashboard(expected: int | None) -> Dashboard:
            return Dashboard("embed", 0, devices, no_dashboard=options.no_dashboard,
                             stage_number=1 if whole_run else None, weights=self.costs, later_factor=0.0,
                             expected_tasks=expected)

        try:
            if shared is None:
                dashboard = make_dashboard(None if shards is None else shards * len(self.kinds))
                with dashboard:
                    self._show_on(dashboard)
                    manager = make_manager()

                    def on_event(event: Event) -> None:
                        dashboard.handle(event)
                        self._on_event(event)

                    manager.on_event = on_event
                    run_report = manager.run(tasks)
            else:
                key = repr((devices, sorted(init_args.items()), sorted(settings.items())))
                channel = shared.channel(setup.paths.root.name, key, lambda: (make_manager(), make_dashboard(None)))
                if shared.dashboard is not None:
                    self._show_on(shared.dashboard)
                if isinstance(tasks, list):
                    channel.extend(tasks)
                    channel.close()
                run_report = channel.run(self._on_event, None if isinstance(tasks, list) else tasks)
        finally:
            with self._lock:
                self._dashboard = None
            ended = self._now()
            for worker in self.state.workers.values():
                worker.end_s = ended
            for kind in self.kinds:
                if "end_s" not in self.state.times.get(kind.name, {}):
                    self.state.mark(kind.name, "end")
        for kind in self.kinds:
            self.reports[kind.name].duplicate_frames = sum(
                int(r.get("duplicates", 0)) for key, r in run_report.finished.items() if key.endswith(f":{kind.name}"))
        run_report.raise_for_failures("embed")
        for kind in self.kinds:
            report = self.reports[kind.name]
            logger.info("%s: %d frame(s) in %d shard(s), %.1f s on the devices", kind.name, report.frames,
                        report.computed_shards, sum(w.busy_seconds.get(kind.name, 0.0)
                                                    for w in self.state.workers.values()))

    def _show_on(self, dashboard: Dashboard) -> None:
        """Count this queue's tasks, those known and those to come, on ``dashboard``."""
        with self._lock:
            self._dashboard = dashboard
            for key, (_, shard) in self._open.items():
                dashboard.add_task(key, shard.frames)

    def _now(self) -> float:
        return round(time.monotonic() - self.state.started, 3)

    def _worker(self, worker_id: int, device: str) -> WorkerReport:
        report = self.state.workers.get(worker_id)
        if report is None:
            report = self.state.workers[worker_id] = WorkerReport(device=device)
        return report

    def _on_event(self, event: Event) -> None:
        # Counted as shards finish, so an interrupted run's summary tells what was done.
        if isinstance(event, WorkerStarted):
            self._worker(event.worker_id, event.device).started(self._now(), event.init_seconds, event.info)
        elif isinstance(event, WorkerRestarted):
            self._worker(event.worker_id, event.device).restarts = event.restarts
        elif isinstance(event, TaskStarted):
            kind_name = event.task_key.rpartition(":")[2]
            self.state.mark(kind_name, "first_shard")
        if not isinstance(event, TaskFinished):
            return
        with self._lock:
            entry = self._open.pop(event.task_key, None)
            if entry is not None:
                self._left[entry[0].name] -= 1
            feed_closed = self._feed is None or self._feed.closed
            last_of_kind = entry is not None and feed_closed and self._left[entry[0].name] == 0
        if entry is None:
            return
        kind, shard = entry
        worker = self.state.workers.get(event.worker_id)
        if worker is not None:
            worker.task_done(kind.name, float(event.result.get("busy_seconds", 0.0)), self._now())
        stage = self.reports[kind.name]
        stage.frames += shard.frames
        stage.computed_shards += 1
        self.state.mark(kind.name, "end")
        stage.seconds = self.state.times[kind.name]["end_s"] - self.state.times[kind.name].get("start_s", 0.0)
        if self.on_shard_done is not None:
            try:
                self.on_shard_done(kind, shard)
            except Exception:  # noqa: BLE001 - a shard not handed on is picked up by the stage after
                logger.debug("on_shard_done failed for %s", event.task_key, exc_info=True)
        if last_of_kind:
            signal_at(f"last:{kind.name}")
