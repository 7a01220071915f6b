"""Stages 2 and 3 of ``predict``: embed every shard with one model kind on the planned devices.

Each shard without a verified feature file becomes one task for
:class:`~virnucpro.pipeline.workqueue.manager.BatchQueueManager`, run by the kind's
worker functions (``pipeline/parallel.py`` for DNABERT-S,
``pipeline/parallel_esm.py`` for ESM-2). :func:`feature_stage` takes the shards as a
list; :class:`FeatureQueue` also takes them one at a time while the queue runs
(:mod:`.stream`: DNABERT-S embeds shard 1 while later shards are translated).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from virnucpro.pipeline.checkpoint import make_dir, verify_done
from virnucpro.pipeline.model_kinds import MODEL_KINDS, EmbedPayload, ModelKind
from virnucpro.pipeline.outputs import shard_name
from virnucpro.pipeline.report.dashboard import Dashboard, later_cost_factor
from virnucpro.pipeline.report.summary import RunState, StageReport
from virnucpro.pipeline.run.config import RunSetup
from virnucpro.pipeline.run.stop import signal_at
from virnucpro.pipeline.stages.work_files import ShardInfo
from virnucpro.pipeline.workqueue.feed import TaskFeed
from virnucpro.pipeline.workqueue.manager import BatchQueueManager, Event, Task, TaskFinished, TaskStarted

logger = logging.getLogger(__name__)


def feature_stage(kind: ModelKind, shards: list[ShardInfo], setup: RunSetup, state: RunState,
                  on_shard_done: Callable[[int], None] | None = None) -> None:
    """Embed every shard of ``shards`` that lacks a verified ``kind`` feature file.

    Args:
        on_shard_done: called in this process with a shard's index as soon as its ``kind``
            feature file is written (not for reused ones); its exceptions are logged, not raised.
    """
    queue = FeatureQueue(kind, setup, state, on_shard_done)
    tasks = [task for task in (queue.task_for(shard) for shard in shards) if task is not None]
    queue.log_reused()
    if tasks:
        queue.run(tasks)


class FeatureQueue:
    """One model kind's embedding of shards on the planned devices, with its stage report.

    :meth:`task_for` turns a shard into a task (None when its feature file verifies);
    :meth:`run` runs a task list or a :class:`TaskFeed` filled (by another thread,
    through :meth:`task_for`) while the queue runs.
    """

    def __init__(self, kind: ModelKind, setup: RunSetup, state: RunState,
                 on_shard_done: Callable[[int], None] | None = None) -> None:
        self.kind, self.setup, self.state, self.on_shard_done = kind, setup, state, on_shard_done
        self.began = time.monotonic()
        self.report = state.stages[kind.name] = StageReport()
        self._lock = threading.Lock()
        self._sizes: dict[str, int] = {}  # tasks not finished yet
        self._shard_of: dict[str, int] = {}
        self._feed: TaskFeed | None = None
        self._dashboard: Dashboard | None = None
        self.total = 0

    def task_for(self, shard: ShardInfo) -> Task | None:
        """The task embedding ``shard``, or None (counted as reused) when its feature file verifies."""
        kind, paths = self.kind, self.setup.paths
        target = kind.features(paths, shard.index)
        identity = self.setup.config.feature_identity(kind, kind.inputs_sha256(paths, shard.index))
        if verify_done(target, identity):
            self.report.reused_shards += 1
            return None
        payload = EmbedPayload(str(kind.source(paths, shard.index)), str(target), identity,
                               str(kind.reuse(paths, shard.index)))
        key = f"{shard_name(shard.index)}:{kind.name}"
        with self._lock:
            self._sizes[key] = shard.frames
            self._shard_of[key] = shard.index
            self.total += shard.frames
            if self._dashboard is not None:
                self._dashboard.total_frames = self.total
        # Task.payload is annotated as a dict in work_queue; any picklable object travels.
        return Task(key, shard.frames, payload)  # type: ignore[arg-type]

    def log_reused(self) -> None:
        if self.report.reused_shards:
            logger.info("%s: reusing %d verified shard(s)", self.kind.name, self.report.reused_shards)

    def run(self, tasks: list[Task] | TaskFeed, expected_tasks: int | None = None) -> None:
        """Embed ``tasks`` (a feed: as they arrive, starting at most ``expected_tasks`` workers
        before they do); raises what :meth:`RunReport.raise_for_failures` raises."""
        kind, setup = self.kind, self.setup
        plan, options = setup.plan, setup.options
        make_dir(setup.paths.features_dir)
        devices = plan.devices
        wanted = len(tasks) if isinstance(tasks, list) else expected_tasks
        if wanted is not None and not plan.in_process and len(devices) > wanted:
            # a worker without a shard would only load the models
            logger.info("%s: %d shard(s) to embed: starting %d of the %d planned workers", kind.name, wanted,
                        max(1, wanted), len(devices))
            devices = devices[:max(1, wanted)]
        if isinstance(tasks, list):
            logger.info("%s: embedding %d frame(s) in %d shard(s) on %s", kind.name, self.total, len(tasks),
                        ", ".join(devices))
        else:
            self._feed = tasks
            logger.info("%s: embedding shards on %s as they are translated", kind.name, ", ".join(devices))
        began_embedding = time.monotonic()
        with Dashboard(kind.name, self.total, devices, no_dashboard=options.no_dashboard,
                       stage_number=2 + MODEL_KINDS.index(kind),
                       later_factor=later_cost_factor(kind.name, dict(setup.models.identities))) as dashboard:
            with self._lock:
                self._dashboard = dashboard
                dashboard.total_frames = self.total
            manager = BatchQueueManager(
                kind.worker_init, kind.worker_process, devices,
                kind.init_args(setup.models, plan.precision, options.batch_tokens, options.compile).as_mapping(),
                in_process=plan.in_process, on_event=lambda event: self._on_event(dashboard, event),
                worker_env={"PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True"},
                stall_timeout=options.stall_timeout or None,
                prefetch_fn=kind.worker_prefetch,
            )
            try:
                run_report = manager.run(tasks)
            finally:
                with self._lock:
                    self._dashboard = None
        self.report.duplicate_frames = sum(int(r.get("duplicates", 0)) for r in run_report.finished.values())
        self.report.seconds = time.monotonic() - self.began
        run_report.raise_for_failures(kind.name)
        logger.info("%s: %d frame(s) in %.1f s", kind.name, self.report.frames, time.monotonic() - began_embedding)

    def _on_event(self, dashboard: Dashboard, event: Event) -> None:
        # Counted as shards finish, so an interrupted run's summary tells what was done.
        dashboard.handle(event)
        if isinstance(event, TaskStarted):
            self.state.mark(self.kind.name, "first_shard")
        if not isinstance(event, TaskFinished):
            return
        with self._lock:
            size = self._sizes.pop(event.task_key, None)
            shard = self._shard_of.get(event.task_key)
            last = not self._sizes and (self._feed is None or self._feed.closed)
        if size is None or shard is None:
            return
        self.report.frames += size
        self.report.computed_shards += 1
        self.report.seconds = time.monotonic() - self.began
        if self.on_shard_done is not None:
            self.on_shard_done(shard)
        if last:
            signal_at(f"last:{self.kind.name}")
