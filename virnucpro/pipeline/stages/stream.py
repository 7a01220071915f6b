"""Translate and the first embedder (DNABERT-S) overlap: a shard is embedded as soon as it is written.

Translate runs on a thread of this process and hands each shard, once its DNA
and protein files, its reuse plans and their ``.done`` markers exist, to a
:class:`~virnucpro.pipeline.workqueue.feed.TaskFeed`; the first kind's work queue
runs in the main thread (it owns the stop signals) and embeds the shards as
they arrive. The workers load their models while the first shard is translated.

Which shards are embedded is decided shard by shard exactly as the serial run
decided it over the whole list: a shard whose scores verify is skipped (unless
``--keep-features``), any other is embedded together with the earlier shards it
reuses rows from (its reuse plan names them; they were written before it).
The later embedders (ESM-2) start once translate is finished, from the full
shard list.

Stops: a stop signal reaches the main thread; the queue stops its workers and
cancels the feed, and translate stops at its next chunk (its atomic writes leave
nothing half-written). A translate error (the input changed) closes the feed:
the shards already queued are finished, then the error is raised.
"""

from __future__ import annotations

import logging
import math
import threading

from virnucpro.pipeline.checkpoint import verify_done
from virnucpro.pipeline.model_kinds import MODEL_KINDS
from virnucpro.pipeline.report.summary import RunState
from virnucpro.pipeline.run.config import RunSetup
from virnucpro.pipeline.run.stop import signal_at, signal_wanted_at
from virnucpro.pipeline.stages.embed import FeatureQueue
from virnucpro.pipeline.stages.feature_files import reuse_sources
from virnucpro.pipeline.stages.score import score_identity
from virnucpro.pipeline.stages.translate import translate_stage
from virnucpro.pipeline.stages.work_files import ShardInfo
from virnucpro.pipeline.workqueue.feed import FeedCancelled, TaskFeed

logger = logging.getLogger(__name__)

OVERLAP_HOOK = "overlap:translate"
"""``VIRNUCPRO_SIGNAL_AT=overlap:translate[:KILL|:TERM|:INT]``: the signal is sent by translate
once the first embedded shard is finished and before the next shard is written (tests)."""

_JOIN_SECONDS = 60.0


def translate_and_embed(setup: RunSetup, state: RunState, chunks: int | None) -> None:
    """Translate the input and embed its shards with the first model kind, overlapped.

    Args:
        chunks: the input's chunk count when the input check counted it (how many workers to
            start before the first shard arrives), else None.

    Raises:
        whatever translate raises (after the shards it queued are embedded), or the queue's
        failure, or :class:`~virnucpro.pipeline.workqueue.manager.RunInterrupted`.
    """
    kind = MODEL_KINDS[0]
    paths = setup.paths
    queue = FeatureQueue(kind, setup, state)
    seen: dict[int, ShardInfo] = {}
    queued: set[int] = set()
    tasks: list = []
    hook_armed = [signal_wanted_at(OVERLAP_HOOK)]
    first_done = threading.Event()

    def wanted(shard: ShardInfo) -> list[ShardInfo]:
        """The shards to embed because of ``shard``: none when its scores verify, else it and its sources."""
        seen[shard.index] = shard
        if not setup.options.keep_features and verify_done(paths.shard_scores(shard.index),
                                                           score_identity(setup, shard)):
            return []
        indices = {shard.index}.union(*(reuse_sources(paths, k, shard.index) for k in MODEL_KINDS))
        return [seen[i] for i in sorted(indices) if i not in queued and i in seen]

    if verify_done(paths.translate_index, setup.config.translate_identity()):
        # Resumed: the shards exist (or are re-made when the index does not hold this --min-length).
        state.mark("translate", "start")
        translate_stage(setup, state, on_shard=lambda shard: tasks.extend(_tasks(queue, wanted(shard), queued)))
        state.mark("translate", "end")
        state.mark(kind.name, "start")
        queue.log_reused()
        if tasks:
            queue.run(tasks)
        state.mark(kind.name, "end")
        return

    expected = None if chunks is None else max(1, math.ceil(chunks / setup.config.shard_size))
    feed = TaskFeed(expected=expected)
    errors: list[BaseException] = []

    def on_shard(shard: ShardInfo) -> None:
        new = _tasks(queue, wanted(shard), queued)
        feed.extend(new)
        if new and hook_armed[0]:
            hook_armed[0] = False
            first_done.wait(_JOIN_SECONDS)
            signal_at(OVERLAP_HOOK)

    def produce() -> None:
        try:
            state.mark("translate", "start")
            translate_stage(setup, state, on_shard=on_shard, cancelled=lambda: feed.cancelled)
            state.mark("translate", "end")
            signal_at("after:translate")
        except BaseException as exc:  # noqa: BLE001 - raised in the main thread
            errors.append(exc)
        finally:
            feed.close()

    queue.on_shard_done = lambda index: first_done.set()
    thread = threading.Thread(target=produce, name="virnucpro-translate", daemon=True)
    state.mark(kind.name, "start")
    thread.start()
    try:
        queue.run(feed, expected_tasks=expected)
    finally:
        if thread.is_alive():
            feed.cancel()
            thread.join(_JOIN_SECONDS)
        state.mark(kind.name, "end")
    queue.log_reused()
    failure = next((e for e in errors if not isinstance(e, FeedCancelled)), None)
    if failure is not None:
        raise failure


def _tasks(queue: FeatureQueue, shards: list[ShardInfo], queued: set[int]) -> list:
    """The tasks of ``shards`` not queued before (marked queued; verified ones give none)."""
    tasks = []
    for shard in shards:
        queued.add(shard.index)
        task = queue.task_for(shard)
        if task is not None:
            tasks.append(task)
    return tasks
