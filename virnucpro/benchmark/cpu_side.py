"""Throughput of the CPU stages per frame, on one core.

Measured with ``torch.set_num_threads(1)`` and ``TOKENIZERS_PARALLELISM=false``
(restored afterwards), on a synthetic contig file:

1. ``chunk_translate``: :func:`virnucpro.pipeline.stages.frames.iter_chunk_frames`
   (reading, chunking, six-frame selection);
2. ``dna_tokenize``: BPE tokenisation of the kept frames' DNA (a 4096-token
   vocabulary, :func:`~virnucpro.benchmark.synthetic.train_dna_tokenizer`);
3. ``protein_tokenize``: ESM-1b token ids through the byte lookup table and
   padded batch matrices (:func:`virnucpro.models.esm2.encode_sequences`,
   :func:`~virnucpro.models.esm2.fill_token_matrix`);
4. ``join_classify_write``: joining real-size feature blocks (768 + 2560) by
   frame ID, the published classifier layout (3328 -> 512 -> 2) in float64 as
   ``predict`` runs it, and the result rows and per-chunk table
   (:mod:`virnucpro.pipeline.report.results`) written to a file.

Not included: the embedding models, feature-file and shard I/O, process start-up.

The serial parts of a whole ``predict`` run (:func:`measure_run_stages`,
:func:`serial_account`) are timed through the stage code itself, on one core, on
a run directory of synthetic contigs: ``translate_stage`` (shard files and
tables written), ``score_shard`` on feature files of real width (768 + 2560,
written by the pipeline's own writer; the classifier is loaded beforehand, as
the score pool's warm-up does) and ``assemble`` (every result table). Scoring
overlaps the GPUs (the score pool scores each shard as its ESM-2 features are
written); translate, assembly and the score of the last shards stay serial.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from virnucpro.benchmark import synthetic

logger = logging.getLogger(__name__)

DNABERT_DIM = 768
ESM_DIM = 2560
GPUS_COMPARED = 8
RUN_FRAMES = 1_000_000  # the serial account is for a run of this many frames (a 1M-read sample)
SHARD_FRAMES = 10_000  # predict's default --shard-size


@dataclass(frozen=True)
class StageTiming:
    """One CPU stage: frames handled and wall seconds."""

    name: str
    frames: int
    seconds: float

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("inf")


@contextlib.contextmanager
def one_core() -> Iterator[None]:
    """Run torch and the tokenizers library on one thread for the duration of the block."""
    threads = torch.get_num_threads()
    previous = os.environ.get("TOKENIZERS_PARALLELISM")
    torch.set_num_threads(1)
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        if previous is None:
            os.environ.pop("TOKENIZERS_PARALLELISM", None)
        else:
            os.environ["TOKENIZERS_PARALLELISM"] = previous


def measure_cpu_stages(total_bp: int, chunk_length: int, tokenizer=None, seed: int = 0) -> list[StageTiming]:
    """Time the four CPU stages on about ``total_bp`` bases of synthetic contigs, on one core.

    Args:
        total_bp: size of the synthetic input.
        chunk_length: chunk length (500 for the SPEC 8 comparison).
        tokenizer: a DNA tokenizer; a synthetic 4096-token BPE one when None.
        seed: input seed.
    """
    from virnucpro.models.esm2 import esm1b_tokens
    from virnucpro.pipeline.stages.frames import iter_chunk_frames

    tokenizer = tokenizer or synthetic.train_dna_tokenizer(seed=seed)
    esm_tokens = esm1b_tokens()
    with tempfile.TemporaryDirectory(prefix="virnucpro-bench-") as tmp, one_core():
        contigs = Path(tmp) / "contigs.fa"
        synthetic.write_contigs(contigs, total_bp, seed=seed)

        began = time.perf_counter()
        chunks = list(iter_chunk_frames(contigs, chunk_length))
        t_translate = time.perf_counter() - began
        ids = [fid for chunk in chunks for fid in chunk.frame_ids()]
        dna = [f.nucleotide for chunk in chunks for f in chunk.frames]
        protein = [f.protein for chunk in chunks for f in chunk.frames]
        n = len(ids)
        if n == 0:
            raise RuntimeError("synthetic contigs gave no kept frame")

        began = time.perf_counter()
        tokenizer.encode(dna)
        t_dna = time.perf_counter() - began

        began = time.perf_counter()
        _protein_batches(protein, esm_tokens)
        t_protein = time.perf_counter() - began

        t_join = _join_classify_write(ids, Path(tmp), seed)

    return [
        StageTiming("chunk_translate", n, t_translate),
        StageTiming("dna_tokenize", n, t_dna),
        StageTiming("protein_tokenize", n, t_protein),
        StageTiming("join_classify_write", n, t_join),
    ]


def _protein_batches(protein: list[str], tokens, budget: int = 4096) -> int:
    """Build every padded ESM-2 token matrix of ``protein``; returns the batch count."""
    from virnucpro.models.batching import plan_batches
    from virnucpro.models.esm2 import encode_sequences, fill_token_matrix, padded_width

    codes, lengths = encode_sequences(protein, tokens.lut)
    offsets = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    batches = plan_batches(padded_width(lengths), budget)  # as the engine plans
    for idx in batches:
        out = np.empty((len(idx), int(padded_width(int(lengths[idx].max())))), dtype=np.int64)
        fill_token_matrix(out, idx, codes, offsets, lengths, tokens)
    return len(batches)


def _join_classify_write(ids: list[str], tmp: Path, seed: int) -> float:
    """Seconds to join two feature blocks by ID, classify, and write both result tables."""
    from virnucpro.models.classifier import MLPClassifier
    from virnucpro.pipeline.report import results
    from virnucpro.pipeline.stages.feature_files import Features, join_by_id

    rng = np.random.default_rng(seed)
    order = rng.permutation(len(ids))  # the DNABERT-S block in another row order: the join must match IDs
    dnabert_rows = rng.standard_normal((len(ids), DNABERT_DIM), dtype=np.float32)
    dnabert = Features([ids[i] for i in order], dnabert_rows, {})
    esm = Features(list(ids), rng.standard_normal((len(ids), ESM_DIM), dtype=np.float32), {})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        classifier = MLPClassifier(DNABERT_DIM + ESM_DIM, 512, 2).double().eval()

    began = time.perf_counter()
    features = join_by_id(ids, dnabert, esm)
    with torch.inference_mode():
        logits = classifier(torch.from_numpy(features).double()).numpy()
    rows = results.frame_scores(ids, results.probabilities_from_logits(logits))
    with open(tmp / "prediction_results.txt", "w", encoding="utf-8") as out:
        out.write(results.PREDICTIONS_HEADER)
        out.writelines(row.line() for row in rows)
    with open(tmp / "prediction_results_highestscore.csv", "w", encoding="utf-8") as out:
        out.write(results.HIGHEST_SCORE_HEADER)
        results.write_highest_score_rows(sorted(results.chunk_calls(rows), key=lambda c: c.chunk_id), out)
    return time.perf_counter() - began


def cpu_frames_per_s(stages: list[StageTiming]) -> float:
    """Frames per second of one core running all stages one after another."""
    per_frame = sum(s.seconds / s.frames for s in stages)
    return 1.0 / per_frame if per_frame > 0 else float("inf")


# --------------------------------------------------------------------------- serial parts of a run


def measure_run_stages(total_bp: int, chunk_length: int, seed: int = 0,
                       shard_size: int = SHARD_FRAMES) -> list[StageTiming]:
    """Time ``translate_stage``, ``score_shard`` (every shard) and ``assemble`` on one core, on a
    run directory made from about ``total_bp`` bases of synthetic contigs.

    Returns:
        ``translate_stage``, ``score_shard`` and ``assemble`` timings, each over every kept frame.
    """
    from virnucpro.pipeline.model_kinds import MODEL_KINDS
    from virnucpro.pipeline.report.summary import RunState
    from virnucpro.pipeline.stages.assemble import assemble
    from virnucpro.pipeline.stages.feature_files import read_shard_sequences, write_feature_result
    from virnucpro.pipeline.stages.score import score_job, score_shard, scoring_classifier
    from virnucpro.pipeline.stages.translate import translate_stage

    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory(prefix="virnucpro-bench-run-") as tmp, one_core():
        setup = _run_setup(Path(tmp), total_bp, chunk_length, shard_size, seed)
        state = RunState()
        began = time.perf_counter()
        translate_stage(setup, state)
        t_translate = time.perf_counter() - began
        frames = sum(shard.frames for shard in state.shards)
        if frames == 0:
            raise RuntimeError("synthetic contigs gave no kept frame")

        paths, config = setup.paths, setup.config
        paths.features_dir.mkdir(parents=True, exist_ok=True)
        for shard in state.shards:
            ids, _ = read_shard_sequences(paths.shard_dna(shard.index))
            for kind in MODEL_KINDS:
                dim = kind.dim(dict(config.models))
                order = rng.permutation(len(ids))  # written in another row order: the join must match IDs
                identity = config.feature_identity(kind, kind.inputs_sha256(paths, shard.index))
                write_feature_result(kind.features(paths, shard.index), [ids[i] for i in order],
                                     rng.standard_normal((len(ids), dim), dtype=np.float32), identity, dim)
        jobs = [score_job(setup, shard) for shard in state.shards]
        scoring_classifier(jobs[0].classifier_path, jobs[0].identity.get("classifier"))

        began = time.perf_counter()
        for job in jobs:
            score_shard(job)
        t_score = time.perf_counter() - began

        began = time.perf_counter()
        assemble(setup, state)
        t_assemble = time.perf_counter() - began
    return [
        StageTiming("translate_stage", frames, t_translate),
        StageTiming("score_shard", frames, t_score),
        StageTiming("assemble", frames, t_assemble),
    ]


def _run_setup(tmp: Path, total_bp: int, chunk_length: int, shard_size: int, seed: int):
    """An accepted run of synthetic contigs in ``tmp`` with a random published-layout classifier."""
    from virnucpro.models.classifier import MLPClassifier
    from virnucpro.pipeline.checkpoint import hash_input
    from virnucpro.pipeline.outputs import RunPaths
    from virnucpro.pipeline.run.config import RunConfig, RunSetup
    from virnucpro.pipeline.run.options import PredictOptions
    from virnucpro.pipeline.run.setup import DevicePlan, ResolvedModels

    contigs = tmp / "contigs.fa"
    synthetic.write_contigs(contigs, total_bp, seed=seed)
    classifier = tmp / "classifier.pth"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch.save(MLPClassifier(DNABERT_DIM + ESM_DIM, 512, 2).state_dict(), classifier)
    identities = {"dnabert": {"name": "benchmark-dnabert", "dim": DNABERT_DIM},
                  "esm": {"name": "benchmark-esm", "dim": ESM_DIM},
                  "classifier": {"name": "benchmark-classifier"}}
    options = PredictOptions(input_path=str(contigs), output_dir=str(tmp / "run"), chunk_length=chunk_length,
                             shard_size=shard_size)
    models = ResolvedModels(Path(), Path(), classifier, identities)
    plan = DevicePlan(["cpu"], True, "fp32")
    config = RunConfig.build(options, models, plan, hash_input(contigs), shard_size)
    return RunSetup(options, RunPaths(tmp / "run"), config, models, plan, "new")


def serial_account(run_stages: list[StageTiming], gpu_frames_per_s: float | None = None,
                   frames: int = RUN_FRAMES, shard_size: int = SHARD_FRAMES,
                   gpus: int = GPUS_COMPARED, streamed: dict[str, Any] | None = None) -> dict[str, object]:
    """The CPU work of a ``frames``-frame run on ``gpus`` GPUs after the score pool: what overlaps
    the GPUs, what stays serial, and the serial seconds.

    Args:
        run_stages: :func:`measure_run_stages`.
        gpu_frames_per_s: both models' frames/s of ONE GPU measured in this benchmark run
            (None: no GPU ran them here, the GPU side and the fraction are "not measured").
        streamed: :func:`virnucpro.benchmark.streaming.measure_streamed_serial` of this run. Given,
            the serial seconds are what overlaps nothing in today's streamed ``predict``, and the
            per-core-rate account (translate, assembly and the last shard one after the other)
            is kept beside them as ``serial_arrangement_seconds``; without it, that account
            is the serial part.
    """
    rate = {s.name: s.frames_per_s for s in run_stages}
    last_shards = min(shard_size, frames)
    arrangement = {
        "translate": frames / rate["translate_stage"],
        "assemble": frames / rate["assemble"],
        # the last GPU's shard, scored after ESM-2 ends (the other GPUs' last shards in parallel beside it)
        "score_last_shard": last_shards / rate["score_shard"],
    }
    serial = dict(streamed["streamed"]) if streamed is not None else arrangement
    serial_s = sum(serial.values())
    score_core_s = frames / rate["score_shard"]
    gpu_s = frames / (gpus * gpu_frames_per_s) if gpu_frames_per_s else None
    fraction = serial_s / (serial_s + gpu_s) if gpu_s is not None else None
    lines = [
        f"overlapping the GPUs: scoring ({score_core_s:,.0f} core-s for {frames:,} frames, in the score pool "
        f"while ESM-2 runs), except the last shard's; tokenising runs in the GPU workers",
    ]
    if streamed is not None:
        lines += [
            "overlapping DNABERT-S and ESM-2 too: translate after its first shard, assembly up to the last shard",
            *streamed["lines"],
        ]
    else:
        lines.append("serial (nothing else runs): " + ", ".join(f"{k} {v:,.1f} s" for k, v in serial.items())
                     + f" = {serial_s:,.1f} s for {frames:,} frames (shards of {shard_size:,}), from the per-core rates")
    if fraction is not None and gpu_s is not None:
        lines += [f"GPU side: {gpu_s:,.1f} s on {gpus} GPUs (this run's one-GPU rate x {gpus}, linear scaling assumed)",
                  f"serial CPU share of the wall time: {fraction:.1%} (target < 10%)"]
    else:
        lines += ["GPU side: not measured (no GPU ran both models at full size in this benchmark run)",
                  "serial CPU share of the wall time: not measured"]
    return {
        "frames": frames,
        "shard_size": shard_size,
        "stages": [{"name": s.name, "frames": s.frames, "seconds": s.seconds, "frames_per_s": s.frames_per_s}
                   for s in run_stages],
        "overlapped": {"score": score_core_s},
        "serial_seconds": serial,
        "serial_seconds_total": serial_s,
        "serial_arrangement_seconds": arrangement,
        "streamed": streamed,
        "gpu_seconds": gpu_s,
        "serial_fraction": fraction,
        "lines": lines,
    }
