"""Translate and both embedders overlap: a shard's tasks are queued as soon as it is written.

Translate runs on a thread of this process and hands each shard, once its DNA
and protein files, its reuse plans and their ``.done`` markers exist, to a
:class:`~virnucpro.pipeline.workqueue.feed.TaskFeed`: one task per model kind
(DNABERT-S and ESM-2). One work queue runs in the main thread (it owns the stop
signals) with one worker per device holding both models
(:mod:`virnucpro.pipeline.workers`); the workers load and warm up their models
while the first shard is translated, and no model waits for the other's shards. (In a
many-sample run this runs on the sample's thread and the queue is the run's one queue,
see :class:`~virnucpro.pipeline.stages.embed.SampleQueue`; the code here is the same.)

Which shards are embedded is decided shard by shard exactly as the serial run
decided it over the whole list: a shard whose scores verify is skipped (unless
``--keep-features``), any other is embedded together with the earlier shards it
reuses rows from (its reuse plan names them; they were written before it).

Stops: a stop signal reaches the main thread; the queue stops its workers and
cancels the feed, and translate stops at its next chunk (its atomic writes leave
nothing half-written). A translate error (the input changed) closes the feed:
the shards already queued are finished, then the error is raised.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from virnucpro.log import helper_thread_name
from virnucpro.pipeline.checkpoint import verify_done
from virnucpro.pipeline.model_kinds import MODEL_KINDS, ModelKind
from virnucpro.pipeline.report.summary import RunState
from virnucpro.pipeline.run.config import RunSetup
from virnucpro.pipeline.run.stop import signal_at, signal_wanted_at
from virnucpro.pipeline.stages.embed import FeatureQueue
from virnucpro.pipeline.stages.feature_files import reuse_sources
from virnucpro.pipeline.stages.score import score_identity
from virnucpro.pipeline.stages.translate import expected_shards, translate_stage
from virnucpro.pipeline.stages.work_files import ShardInfo
from virnucpro.pipeline.workqueue.feed import FeedCancelled, TaskFeed

logger = logging.getLogger(__name__)

OVERLAP_HOOK = "overlap:translate"
"""``VIRNUCPRO_SIGNAL_AT=overlap:translate[:KILL|:TERM|:INT]``: the signal is sent by translate
once the first embedded shard is finished and before the next shard is written (tests)."""

_JOIN_SECONDS = 60.0


@dataclass
class Translated:
    """What translate found out, shard by shard, for the stages after the queue.

    ``scored_before``: shards whose scores verified when translate handed them over (an earlier
    run scored them); ``seen``: every shard by index (written by the translate thread).
    """

    seen: dict[int, ShardInfo] = field(default_factory=dict)
    scored_before: set[int] = field(default_factory=set)


def translate_and_embed(setup: RunSetup, state: RunState, chunks: int | None, found: Translated | None = None,
                        on_shard_done: Callable[[ModelKind, ShardInfo], None] | None = None,
                        on_translated: Callable[[], None] | None = None) -> Translated:
    """Translate the input and embed its shards with every model kind, overlapped, on one queue.

    Args:
        chunks: the input's chunk count when the input check counted it (how many workers to
            start before the first shard arrives), else None.
        found: filled as translate goes (a fresh one when None); also returned.
        on_shard_done: called in this (the main) thread with the kind and shard of each
            feature file written (the score pool submits shards from here).
        on_translated: called once translate has finished, on the thread that translated
            (``state.shards`` is complete then: the table walk may start).

    Raises:
        whatever translate raises (after the shards it queued are embedded), or the queue's
        failure, or :class:`~virnucpro.pipeline.workqueue.manager.RunInterrupted`.
    """
    paths = setup.paths
    found = Translated() if found is None else found
    seen = found.seen
    queued: set[int] = set()
    tasks: list = []
    hook_armed = [signal_wanted_at(OVERLAP_HOOK)]
    first_done = threading.Event()

    def shard_done(kind: ModelKind, shard: ShardInfo) -> None:
        if kind is MODEL_KINDS[0]:
            first_done.set()
        if on_shard_done is not None:
            on_shard_done(kind, shard)

    queue = FeatureQueue(MODEL_KINDS, setup, state, shard_done)

    def wanted(shard: ShardInfo) -> list[ShardInfo]:
        """The shards to embed because of ``shard``: none when its scores verify, else it and its sources."""
        seen[shard.index] = shard
        if verify_done(paths.shard_scores(shard.index), score_identity(setup, shard)):
            found.scored_before.add(shard.index)
            if not setup.options.keep_features:
                return []
        indices = {shard.index}.union(*(reuse_sources(paths, k, shard.index) for k in MODEL_KINDS))
        return [seen[i] for i in sorted(indices) if i not in queued and i in seen]

    if verify_done(paths.translate_index, setup.config.translate_identity()):
        # Resumed: the shards exist (or are re-made when the index does not hold this --min-length).
        state.mark("translate", "start")
        translate_stage(setup, state, on_shard=lambda shard: tasks.extend(_tasks(queue, wanted(shard), queued)))
        state.mark("translate", "end")
        if on_translated is not None:
            on_translated()
        queue.log_reused()
        if tasks:
            queue.run(tasks)
        else:
            for kind in MODEL_KINDS:
                state.mark(kind.name, "start")
                state.mark(kind.name, "end")
        return found

    expected = expected_shards(setup.config, chunks)
    feed = TaskFeed(expected=None if expected is None else expected * len(MODEL_KINDS))
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
            if on_translated is not None and not feed.cancelled:
                on_translated()
        except BaseException as exc:  # noqa: BLE001 - raised in the main thread
            errors.append(exc)
        finally:
            feed.close()

    thread = threading.Thread(target=produce, name=helper_thread_name("translate"), daemon=True)
    thread.start()
    try:
        queue.run(feed, expected_shards=expected)
    finally:
        if thread.is_alive():
            feed.cancel()
            thread.join(_JOIN_SECONDS)
    queue.log_reused()
    failure = next((e for e in errors if not isinstance(e, FeedCancelled)), None)
    if failure is not None:
        raise failure
    return found


def _tasks(queue: FeatureQueue, shards: list[ShardInfo], queued: set[int]) -> list:
    """The tasks of ``shards`` not queued before (marked queued; verified ones give none)."""
    tasks = []
    for shard in shards:
        queued.add(shard.index)
        tasks.extend(queue.tasks_for(shard))
    return tasks
