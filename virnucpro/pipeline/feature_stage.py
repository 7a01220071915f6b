"""Stages 2 and 3 of ``predict``: embed every shard with one model kind on the planned devices.

Each shard without a verified feature file becomes one task for
:class:`~virnucpro.pipeline.work_queue.BatchQueueManager`, run by the kind's
worker functions (``pipeline/parallel.py`` for DNABERT-S,
``pipeline/parallel_esm.py`` for ESM-2).
"""

from __future__ import annotations

import logging
import time

from virnucpro.pipeline.checkpoint import make_dir, verify_done
from virnucpro.pipeline.dashboard import Dashboard
from virnucpro.pipeline.model_kinds import EmbedPayload, ModelKind
from virnucpro.pipeline.outputs import shard_name
from virnucpro.pipeline.run_config import RunSetup
from virnucpro.pipeline.summary import RunState, StageReport
from virnucpro.pipeline.work_files import ShardInfo
from virnucpro.pipeline.work_queue import BatchQueueManager, Task

logger = logging.getLogger(__name__)


def feature_stage(kind: ModelKind, shards: list[ShardInfo], setup: RunSetup, state: RunState) -> None:
    """Embed every shard of ``shards`` that lacks a verified ``kind`` feature file."""
    paths, plan, options = setup.paths, setup.plan, setup.options
    began = time.monotonic()
    report = state.stages[kind.name] = StageReport()
    tasks = []
    for shard in shards:
        target = kind.features(paths, shard.index)
        identity = setup.config.feature_identity(kind, kind.source_sha256(paths, shard.index))
        if verify_done(target, identity):
            report.reused_shards += 1
            continue
        payload = EmbedPayload(str(kind.source(paths, shard.index)), str(target), identity)
        # Task.payload is annotated as a dict in work_queue; any picklable object travels.
        tasks.append(Task(f"{shard_name(shard.index)}:{kind.name}", shard.frames, payload))  # type: ignore[arg-type]
    if report.reused_shards:
        logger.info("%s: reusing %d verified shard(s)", kind.name, report.reused_shards)
    if not tasks:
        return
    make_dir(paths.features_dir)
    total = sum(t.size for t in tasks)
    logger.info("%s: embedding %d frame(s) in %d shard(s) on %s", kind.name, total, len(tasks), ", ".join(plan.devices))
    with Dashboard(kind.name, total, plan.devices, no_dashboard=options.no_dashboard) as dashboard:
        manager = BatchQueueManager(
            kind.worker_init, kind.worker_process, plan.devices,
            kind.init_args(setup.models, plan.precision, options.batch_tokens).as_mapping(),
            in_process=plan.in_process, on_event=dashboard.handle,
            worker_env={"PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True"},
            stall_timeout=options.stall_timeout or None,
        )
        run_report = manager.run(tasks)
    run_report.raise_for_failures(kind.name)
    report.frames = total
    report.computed_shards = len(tasks)
    report.duplicate_frames = sum(int(r.get("duplicates", 0)) for r in run_report.finished.values())
    report.seconds = time.monotonic() - began
    logger.info("%s: %d frame(s) in %.1f s", kind.name, total, report.seconds)
