"""The serial work left in a streamed run, against the serial arrangement, measured in the same run.

On one core, on a run directory of synthetic contigs (like
:func:`virnucpro.benchmark.cpu_side.measure_run_stages`), with the stage code itself:

* serial arrangement (``predict`` before streaming): the whole ``translate_stage``
  runs before the first shard can be embedded, the whole ``assemble`` after the
  last shard is scored, plus the last shard's scoring;
* streamed (``predict`` now): what overlaps nothing is the translate of the first
  shard (until ``translate_stage`` hands it on), the last shard's scoring, and the
  assembly tail: an :class:`~virnucpro.pipeline.stages.assemble.AssemblyWalk` is
  started with every score file but the last one's ready and the tail is timed from
  the moment the walk waits for the last shard (its rows, the highest-score merge,
  the viral FASTA).

Per 1M frames: the parts that scale with the input (the whole translate and
assembly; the merge and the viral FASTA of the tail) are scaled by
``1M / frames``; the per-shard parts (first shard, last shard's scoring and rows)
are not. Not counted: translate outlasting DNABERT-S on many GPUs (it overlaps
DNABERT-S only while DNABERT-S is slower: needs the GPU rate).
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from virnucpro.benchmark.cpu_side import RUN_FRAMES, SHARD_FRAMES, _run_setup, one_core

logger = logging.getLogger(__name__)


def measure_streamed_serial(total_bp: int, chunk_length: int, seed: int = 0,
                            shard_size: int = SHARD_FRAMES, frames_per_run: int = RUN_FRAMES) -> dict[str, Any]:
    """Time both arrangements on about ``total_bp`` bases of synthetic contigs (see the module).

    Returns:
        ``measured`` seconds of this input, ``per_run`` seconds scaled to ``frames_per_run``
        frames for ``serial_arrangement`` and ``streamed``, and readable ``lines``.
    """
    from virnucpro.pipeline.model_kinds import MODEL_KINDS
    from virnucpro.pipeline.report.summary import RunState
    from virnucpro.pipeline.stages.assemble import AssemblyWalk, assemble
    from virnucpro.pipeline.stages.feature_files import read_shard_sequences, write_feature_result
    from virnucpro.pipeline.stages.score import score_job, score_shard, scoring_classifier
    from virnucpro.pipeline.stages.translate import translate_stage
    from virnucpro.pipeline.stages.work_files import ShardInfo

    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory(prefix="virnucpro-bench-stream-") as tmp, one_core():
        setup = _run_setup(Path(tmp), total_bp, chunk_length, shard_size, seed)
        state = RunState()
        first_shard: list[float] = []
        began = time.perf_counter()
        translate_stage(setup, state, on_shard=lambda shard: first_shard.append(time.perf_counter() - began))
        t_translate = time.perf_counter() - began
        frames = sum(shard.frames for shard in state.shards)
        if len(state.shards) < 2:
            raise RuntimeError("the synthetic input gave fewer than two shards: raise total_bp or lower shard_size")

        paths, config = setup.paths, setup.config
        paths.features_dir.mkdir(parents=True, exist_ok=True)
        for shard in state.shards:
            ids, _ = read_shard_sequences(paths.shard_dna(shard.index))
            for kind in MODEL_KINDS:
                dim = kind.dim(dict(config.models))
                identity = config.feature_identity(kind, kind.inputs_sha256(paths, shard.index))
                write_feature_result(kind.features(paths, shard.index), list(ids),
                                     rng.standard_normal((len(ids), dim), dtype=np.float32), identity, dim)
        jobs = [score_job(setup, shard) for shard in state.shards]
        scoring_classifier(jobs[0].classifier_path, jobs[0].identity.get("classifier"))
        score_seconds = []
        for job in jobs:
            start = time.perf_counter()
            score_shard(job)
            score_seconds.append(time.perf_counter() - start)
        last_score = score_seconds[-1]

        start = time.perf_counter()
        assemble(setup, state)
        t_assemble = time.perf_counter() - start

        last = state.shards[-1]
        waiting, release = threading.Event(), threading.Event()

        class GatedWalk(AssemblyWalk):
            """Every score file ready but the last shard's, which is "scored" when released."""

            def _ready(self, shard: ShardInfo) -> None:
                if shard.index == last.index:
                    waiting.set()
                    release.wait(600)

        walk = GatedWalk(setup, state)
        walk.start()
        if not waiting.wait(600):
            raise RuntimeError("the walk never reached the last shard")
        time.sleep(0.05)  # the walk is blocked on the last shard
        start = time.perf_counter()
        release.set()
        walk.join()
        t_walk_rest = time.perf_counter() - start
        assemble(setup, state, walk=walk)
        t_tables = time.perf_counter() - start - t_walk_rest

    scale = frames_per_run / frames
    serial = {"translate": t_translate * scale, "assemble": t_assemble * scale, "score_last_shard": last_score}
    streamed = {"translate_first_shard": first_shard[0], "score_last_shard": last_score,
                "walk_last_shard": t_walk_rest, "highest_score_and_viral_fasta": t_tables * scale}
    serial_s, streamed_s = sum(serial.values()), sum(streamed.values())
    lines = [
        f"measured on {frames:,} frames in {len(state.shards)} shards of {shard_size:,} (one core); "
        f"per {frames_per_run:,} frames:",
        "serial arrangement: " + ", ".join(f"{k} {v:,.2f} s" for k, v in serial.items()) + f" = {serial_s:,.2f} s",
        "streamed, overlapping nothing: " + ", ".join(f"{k} {v:,.2f} s" for k, v in streamed.items())
        + f" = {streamed_s:,.2f} s",
    ]
    return {
        "frames": frames,
        "shards": len(state.shards),
        "shard_size": shard_size,
        "frames_per_run": frames_per_run,
        "measured": {"translate": t_translate, "first_shard_handed_out": first_shard[0], "assemble": t_assemble,
                     "score_last_shard": last_score, "walk_last_shard": t_walk_rest,
                     "highest_score_and_viral_fasta": t_tables},
        "serial_arrangement": serial,
        "serial_arrangement_total": serial_s,
        "streamed": streamed,
        "streamed_total": streamed_s,
        "lines": lines,
    }
