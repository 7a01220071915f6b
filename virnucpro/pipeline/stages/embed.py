"""Stages 2 and 3 of ``predict``: embed every shard with one model kind on the planned devices.

Each shard without a verified feature file becomes one task for
:class:`~virnucpro.pipeline.workqueue.manager.BatchQueueManager`, run by the kind's
worker functions (``pipeline/parallel.py`` for DNABERT-S,
``pipeline/parallel_esm.py`` for ESM-2).
"""

from __future__ import annotations

import logging
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
from virnucpro.pipeline.workqueue.manager import BatchQueueManager, Event, Task, TaskFinished

logger = logging.getLogger(__name__)


def feature_stage(kind: ModelKind, shards: list[ShardInfo], setup: RunSetup, state: RunState,
                  on_shard_done: Callable[[int], None] | None = None) -> None:
    """Embed every shard of ``shards`` that lacks a verified ``kind`` feature file.

    Args:
        on_shard_done: called in this process with a shard's index as soon as its ``kind``
            feature file is written (not for reused ones); its exceptions are logged, not raised.
    """
    paths, plan, options = setup.paths, setup.plan, setup.options
    began = time.monotonic()
    report = state.stages[kind.name] = StageReport()
    tasks = []
    for shard in shards:
        target = kind.features(paths, shard.index)
        identity = setup.config.feature_identity(kind, kind.inputs_sha256(paths, shard.index))
        if verify_done(target, identity):
            report.reused_shards += 1
            continue
        payload = EmbedPayload(str(kind.source(paths, shard.index)), str(target), identity,
                               str(kind.reuse(paths, shard.index)))
        # Task.payload is annotated as a dict in work_queue; any picklable object travels.
        tasks.append(Task(f"{shard_name(shard.index)}:{kind.name}", shard.frames, payload))  # type: ignore[arg-type]
    if report.reused_shards:
        logger.info("%s: reusing %d verified shard(s)", kind.name, report.reused_shards)
    if not tasks:
        return
    make_dir(paths.features_dir)
    total = sum(t.size for t in tasks)
    devices = plan.devices
    if not plan.in_process and len(devices) > len(tasks):
        # a worker without a shard would only load the models
        logger.info("%s: %d shard(s) to embed: starting %d of the %d planned workers", kind.name, len(tasks),
                    len(tasks), len(devices))
        devices = devices[:len(tasks)]
    logger.info("%s: embedding %d frame(s) in %d shard(s) on %s", kind.name, total, len(tasks), ", ".join(devices))
    sizes = {t.key: t.size for t in tasks}
    shard_of = {f"{shard_name(shard.index)}:{kind.name}": shard.index for shard in shards}
    began_embedding = time.monotonic()
    with Dashboard(kind.name, total, devices, no_dashboard=options.no_dashboard,
                   stage_number=2 + MODEL_KINDS.index(kind),
                   later_factor=later_cost_factor(kind.name, dict(setup.models.identities))) as dashboard:

        def on_event(event: Event) -> None:
            # Counted as shards finish, so an interrupted run's summary tells what was done.
            dashboard.handle(event)
            if isinstance(event, TaskFinished) and event.task_key in sizes:
                report.frames += sizes.pop(event.task_key)
                report.computed_shards += 1
                report.seconds = time.monotonic() - began
                if on_shard_done is not None:
                    on_shard_done(shard_of[event.task_key])
                if not sizes:
                    signal_at(f"last:{kind.name}")

        manager = BatchQueueManager(
            kind.worker_init, kind.worker_process, devices,
            kind.init_args(setup.models, plan.precision, options.batch_tokens, options.compile).as_mapping(),
            in_process=plan.in_process, on_event=on_event,
            worker_env={"PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True"},
            stall_timeout=options.stall_timeout or None,
            prefetch_fn=kind.worker_prefetch,
        )
        run_report = manager.run(tasks)
    report.duplicate_frames = sum(int(r.get("duplicates", 0)) for r in run_report.finished.values())
    report.seconds = time.monotonic() - began
    run_report.raise_for_failures(kind.name)
    logger.info("%s: %d frame(s) in %.1f s", kind.name, report.frames, time.monotonic() - began_embedding)
