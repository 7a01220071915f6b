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
  the moment the walk waits for the last shard (its rows and viral FASTA records,
  then the highest-score merge, which needs every chunk call).

Per 1M frames: the parts that scale with the input (the whole translate and
assembly; the highest-score merge of the tail) are scaled by
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


def shard_size_for(total_bp: int, chunk_length: int, shards: int = 4) -> int:
    """A shard size giving about ``shards`` shards of this input (at most predict's default), so the
    streamed account has a first and a last shard to time on a small benchmark input."""
    # ~0.9 kept frames per chunk of synthetic.write_contigs' input (36,203 of 40,000 at 20 Mbp, 500 bp)
    frames = total_bp / chunk_length * 0.9
    return max(1, min(SHARD_FRAMES, int(frames // shards)))


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
                "walk_last_shard": t_walk_rest, "highest_score_merge": t_tables * scale}
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
                     "highest_score_merge": t_tables},
        "serial_arrangement": serial,
        "serial_arrangement_total": serial_s,
        "streamed": streamed,
        "streamed_total": streamed_s,
        "lines": lines,
    }


def measure_memory(total_bp: int, chunk_length: int = 500, shard_size: int = SHARD_FRAMES, seed: int = 0,
                   dim: int = 8) -> dict[str, Any]:
    """Peak resident memory of translate (streamed: each shard handed on as written), scoring and
    the assembly walk on about ``total_bp`` bases of synthetic contigs, in this process.

    The embeddings are random ``dim``-wide features (the embedders' memory is per shard and
    independent of the input size; this measures what grows with the input, if anything).

    Returns:
        ``peak_rss_mib`` after each step (a high-water mark: each value includes the earlier
        steps), the input size and the frame count.
    """
    import resource

    import torch

    from virnucpro.benchmark import synthetic
    from virnucpro.models.classifier import MLPClassifier
    from virnucpro.pipeline.checkpoint import hash_input
    from virnucpro.pipeline.model_kinds import MODEL_KINDS
    from virnucpro.pipeline.outputs import RunPaths
    from virnucpro.pipeline.report.summary import RunState
    from virnucpro.pipeline.run.config import RunConfig, RunSetup
    from virnucpro.pipeline.run.options import PredictOptions
    from virnucpro.pipeline.run.setup import DevicePlan, ResolvedModels
    from virnucpro.pipeline.stages.assemble import AssemblyWalk, assemble
    from virnucpro.pipeline.stages.feature_files import read_shard_sequences, write_feature_result
    from virnucpro.pipeline.stages.score import score_job, score_shard
    from virnucpro.pipeline.stages.translate import translate_stage

    def peak_mib() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    peaks: dict[str, float] = {"start": peak_mib()}
    seconds: dict[str, float] = {}
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory(prefix="virnucpro-bench-memory-") as tmp_name:
        tmp = Path(tmp_name)
        contigs = tmp / "contigs.fa"
        synthetic.write_contigs(contigs, total_bp, seed=seed)
        classifier = tmp / "classifier.pth"
        torch.save(MLPClassifier(2 * dim, 512, 2).state_dict(), classifier)
        identities = {"dnabert": {"name": "memory-dnabert", "dim": dim}, "esm": {"name": "memory-esm", "dim": dim},
                      "classifier": {"name": "memory-classifier"}}
        options = PredictOptions(input_path=str(contigs), output_dir=str(tmp / "run"), chunk_length=chunk_length,
                                 shard_size=shard_size)
        models = ResolvedModels(Path(), Path(), classifier, identities)
        config = RunConfig.build(options, models, DevicePlan(["cpu"], True, "fp32"), hash_input(contigs), shard_size)
        setup = RunSetup(options, RunPaths(tmp / "run"), config, models, DevicePlan(["cpu"], True, "fp32"), "new")
        peaks["input_written"] = peak_mib()
        state = RunState()
        paths = setup.paths
        paths.features_dir.mkdir(parents=True, exist_ok=True)
        began = time.perf_counter()

        def embed_and_score(shard: Any) -> None:
            ids, _ = read_shard_sequences(paths.shard_dna(shard.index))
            for kind in MODEL_KINDS:
                identity = config.feature_identity(kind, kind.inputs_sha256(paths, shard.index))
                write_feature_result(kind.features(paths, shard.index), list(ids),
                                     rng.standard_normal((len(ids), dim), dtype=np.float32), identity, dim)
            score_shard(score_job(setup, shard))

        translate_stage(setup, state, on_shard=embed_and_score)
        seconds["translate_embed_score"] = time.perf_counter() - began
        peaks["translated_and_scored"] = peak_mib()
        began = time.perf_counter()
        walk = AssemblyWalk(setup, state)
        walk.start()
        assemble(setup, state, walk=walk)
        seconds["assemble"] = time.perf_counter() - began
        peaks["assembled"] = peak_mib()
        frames = state.counts.kept_frames
    return {"total_bp": total_bp, "frames": frames, "shards": len(state.shards), "shard_size": shard_size,
            "peak_rss_mib": {k: round(v, 1) for k, v in peaks.items()},
            "seconds": {k: round(v, 2) for k, v in seconds.items()}}


if __name__ == "__main__":  # python -m virnucpro.benchmark.streaming {serial|memory} TOTAL_BP [SHARD_SIZE]
    import json
    import sys

    logging.basicConfig(level=logging.WARNING)
    what, total = sys.argv[1], int(float(sys.argv[2]))
    size = int(sys.argv[3]) if len(sys.argv) > 3 else SHARD_FRAMES
    result = measure_memory(total, shard_size=size) if what == "memory" else measure_streamed_serial(
        total, 500, shard_size=size)
    sys.stdout.write(json.dumps(result, indent=1) + "\n")
