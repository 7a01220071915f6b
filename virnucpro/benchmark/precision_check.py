"""``virnucpro benchmark --precision-check``: how far BF16/FP16 move YOUR results away from FP32.

For a lab with the real models: a sample of frames from its own input is embedded
by the real ESM-2 and DNABERT-S (resolved exactly as ``predict`` resolves them,
:func:`virnucpro.pipeline.run.setup.resolve_models`) in FP32 and in each lower
precision, and scored by the real classifier. Reported per precision: embedding
cosine to FP32 (min, median, the worst frames), label agreement and flips, and
the largest change of the virus probability. Decide from that before a large run.

Sampling: reservoir sampling (fixed seed) over every kept frame of the input,
so the sample is uniform over the whole file, whatever its order.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from virnucpro.errors import InputError

logger = logging.getLogger(__name__)

SCHEMA = "virnucpro-benchmark-precision-check/1"
WORST_SHOWN = 5


@dataclass
class PrecisionCheckOptions:
    """Options of ``--precision-check`` (model options mean what they mean for ``predict``)."""

    input_path: str
    sample: int = 500
    model_type: int = 500
    model_path: str | None = None
    models: str = "published"
    esm_model: str | None = None
    dnabert_model: str | None = None
    dnabert_revision: str | None = None
    offline: bool = False
    device: str = "auto"
    precisions: tuple[str, ...] = ()
    batch_tokens: int | None = None
    seed: int = 0
    command: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SampledFrames:
    """Frames drawn from the input, in input order."""

    ids: list[str]
    nucleotide: list[str]
    protein: list[str]
    total_frames: int


def sample_frames(input_path: str, chunk_length: int, count: int, seed: int = 0) -> SampledFrames:
    """Uniform sample of ``count`` kept frames of ``input_path`` (all of them if fewer), in input order.

    Raises:
        InputError: the input is unusable or has no kept frame.
    """
    from virnucpro.pipeline.stages.frames import iter_chunk_frames

    rng = random.Random(seed)
    reservoir: list[tuple[int, str, str, str]] = []
    seen = 0
    for chunk in iter_chunk_frames(input_path, chunk_length):
        for frame in chunk.frames:
            item = (seen, chunk.chunk_id + frame.suffix, frame.nucleotide, frame.protein)
            if len(reservoir) < count:
                reservoir.append(item)
            else:
                slot = rng.randrange(seen + 1)
                if slot < count:
                    reservoir[slot] = item
            seen += 1
    if not reservoir:
        raise InputError(f"{input_path}: no kept frame (no chunk has a stop-free translation)")
    reservoir.sort()
    return SampledFrames([r[1] for r in reservoir], [r[2] for r in reservoir], [r[3] for r in reservoir], seen)


def default_check_precisions(device) -> tuple[str, ...]:
    """BF16 and FP16 on CUDA (BF16 only where the GPU supports it), BF16 on the CPU."""
    from virnucpro.models.precision import supports_bf16

    if device.type == "cuda":
        return ("bf16", "fp16") if supports_bf16(device) else ("fp16",)
    return ("bf16",)


def run_precision_check(options: PrecisionCheckOptions) -> dict[str, Any]:
    """Embed and score a sample of the input in FP32 and each lower precision; compare."""
    from virnucpro.benchmark.drift import cosine_rows, cosine_summary, label_agreement, scores
    from virnucpro.benchmark.engines import device_description, release
    from virnucpro.models.classifier import load_classifier
    from virnucpro.models.dnabert_s import load_dnabert_s
    from virnucpro.models.esm2 import load_esm2
    from virnucpro.models.precision import resolve_device, resolve_precision
    from virnucpro.pipeline.prediction import PredictOptions
    from virnucpro.pipeline.run.setup import resolve_models

    began = time.perf_counter()
    device = resolve_device(options.device)
    lows = [p for p in (options.precisions or default_check_precisions(device)) if p != "fp32"]
    if not lows:
        raise ValueError("--precision-check compares lower precisions with FP32: give bf16 and/or fp16")
    models = resolve_models(PredictOptions(
        input_path=options.input_path, output_dir="", model_type=options.model_type,
        model_path=options.model_path, models=options.models, esm_model=options.esm_model,
        dnabert_model=options.dnabert_model, dnabert_revision=options.dnabert_revision,
        offline=options.offline,
    ))
    frames = sample_frames(options.input_path, options.model_type, options.sample, options.seed)
    logger.info("precision check: %d of %d kept frames sampled; FP32 vs %s on %s",
                len(frames.ids), frames.total_frames, ", ".join(lows), device)
    classifier = load_classifier(models.classifier_path)

    features: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for precision in ("fp32", *lows):
        dtype = resolve_precision(precision, device)
        esm = load_esm2(models.esm_path, device, dtype)
        esm_out = esm.embed(frames.protein, batch_tokens=options.batch_tokens).numpy()
        del esm
        release(device)
        dna = load_dnabert_s(models.dnabert_dir, device, dtype)
        dna_out = dna.embed(frames.nucleotide, batch_tokens=options.batch_tokens).numpy()
        del dna
        release(device)
        features[precision] = (dna_out, esm_out)
        logger.info("precision check: %s embeddings done", precision)

    ref_dna, ref_esm = features["fp32"]
    ref_scores = scores(classifier, np.concatenate([ref_dna, ref_esm], axis=1))
    ref_labels = np.argmax(ref_scores, axis=1)
    results = []
    for precision in lows:
        low_dna, low_esm = features[precision]
        low_scores = scores(classifier, np.concatenate([low_dna, low_esm], axis=1))
        esm_cos = cosine_rows(ref_esm, low_esm)
        worst = np.argsort(esm_cos, kind="stable")[:WORST_SHOWN]
        results.append({
            "precision": precision,
            "esm2": cosine_summary(ref_esm, low_esm),
            "dnabert_s": cosine_summary(ref_dna, low_dna),
            "labels": label_agreement(ref_labels, np.argmax(low_scores, axis=1)).as_dict(),
            "max_abs_virus_score_change": float(np.abs(low_scores[:, 1].astype(np.float64)
                                                       - ref_scores[:, 1]).max()),
            "worst_frames": [{"id": frames.ids[i], "cosine": float(esm_cos[i])} for i in worst],
        })
    return {
        "schema": SCHEMA,
        "command": options.command,
        "input": options.input_path,
        "chunk_length": options.model_type,
        "frames": len(frames.ids),
        "frames_in_input": frames.total_frames,
        "seed": options.seed,
        "device": device_description(device),
        "models": models.identities,
        "notice": models.notice,
        "reference": "fp32",
        "results": results,
        "seconds_total": time.perf_counter() - began,
    }
