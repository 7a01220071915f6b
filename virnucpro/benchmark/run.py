"""``virnucpro benchmark``: real-size random-weight engines, the published method, drift, CPU side.

One call of :func:`run_benchmark` measures, in this order and in one process:

1. the device's matrix-multiply rate per precision (one MFU denominator; the other is the
   datasheet dense BF16 peak of :mod:`virnucpro.benchmark.peaks`, which the targets use);
2. ESM-2 and DNABERT-S, ours, at each precision (FP32 always: it is the drift
   reference), then the published method in FP32 (fair-esm's own forward with
   2048-token batches; DNABERT-S one sequence per forward, on the ESM-2 frames:
   frames/s are compared, not seconds);
3. BF16/FP16 drift against our FP32: embedding cosine and classifier labels;
4. the CPU stages on one core (:mod:`virnucpro.benchmark.cpu_side`);
5. the targets, each PASS, FAIL or NOT MEASURED.

The result is a JSON-friendly dict (schema in :mod:`virnucpro.benchmark.report`).
Each model is built, timed and dropped before the next one, so the peak memory
of a run is that model's own.

Steady state: every engine of ours first runs its ``warm_up`` (every graph variant compiled;
seconds and compile seconds per model under ``warmup``), then is warmed up on its whole frame set (so every batch
shape is compiled, selected and allocated before timing) and the best of
``repeats`` (3) passes is reported, every pass listed. At full size DNABERT-S
gets at least :data:`DNABERT_FULL_FRAMES` frames. Tokenising stays outside the
timed passes and is reported under ``tokenize``: DNABERT-S token ids are made
once (:class:`~virnucpro.benchmark.engines.PretokenizedDna`); ESM-2's residue codes
and every batch's padded token matrix are made per precision, in the engine's
own batch plan (:func:`~virnucpro.benchmark.engines.pretokenize_esm`), so its
timed passes copy token matrices to the device and compute. The published
baselines tokenise as the published code does, inside their passes.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from virnucpro.benchmark import flops as cost
from virnucpro.benchmark.synthetic import FrameSet

logger = logging.getLogger(__name__)

SCHEMA = "virnucpro-benchmark/1"
DEFAULT_FRAMES = {"small": 24, "full": 1000}
"""Frames per chunk length (ESM-2, the published baselines and the drift comparison)."""
DNABERT_FULL_FRAMES = 20_000
"""DNABERT-S frames in all at full size (the model is small: fewer frames would time mostly overhead)."""
DEFAULT_CPU_BP = {"small": 300_000, "full": 3_000_000}
DEFAULT_REPEATS = 3
PUBLISHED_ESM_BATCH_TOKENS = 2048

TARGETS = {
    "esm2_mfu": 0.55,
    "dnabert_s_mfu": 0.35,
    "pipeline_speedup": 10.0,
    "bf16_cosine_min": 0.999,
}


@dataclass
class BenchmarkOptions:
    """What ``virnucpro benchmark`` was asked to do (see its ``--help``)."""

    device: str = "auto"
    size: str = "auto"
    frames: int | None = None
    chunk_lengths: tuple[int, ...] = (300, 500)
    precisions: tuple[str, ...] = ()
    skip_baseline: bool = False
    batch_tokens: int | None = None
    seed: int = 0
    cpu_bp: int | None = None
    command: list[str] = field(default_factory=list)
    repeats: int = DEFAULT_REPEATS
    dnabert_frames: int | None = None
    """DNABERT-S frames per chunk length; default ``frames``, or at full size enough for
    :data:`DNABERT_FULL_FRAMES` in all."""
    reference_frames: int | None = None
    """Frames per chunk length for the FP32 engines and the published baselines (the first of the
    measured frames); default ``frames``. They are the drift and agreement reference, which needs
    far fewer frames than a throughput measurement, and FP32 is about 10x slower."""
    compile: str = "auto"
    """``--compile`` for our low-precision engines (see :mod:`virnucpro.models.fusion`)."""
    compile_fp32: str = "auto"
    """``--compile`` for our FP32 engines (the acceptance runs its FP32 references eager)."""


def parse_precisions(spec: str | None) -> tuple[str, ...]:
    """``"fp32,bf16"`` -> ``("fp32", "bf16")``; empty or ``auto`` -> ``()`` (decided per device).

    Raises:
        ValueError: an unknown name.
    """
    if spec is None or spec.strip().lower() in ("", "auto"):
        return ()
    names = tuple(dict.fromkeys(p.strip().lower() for p in spec.split(",") if p.strip()))
    bad = [n for n in names if n not in ("fp32", "bf16", "fp16")]
    if bad:
        raise ValueError(f"unknown precision {bad[0]!r}: use fp32, bf16, fp16 (comma-separated)")
    return names


def parse_chunk_lengths(spec: str) -> tuple[int, ...]:
    """``"300,500"`` -> ``(300, 500)``.

    Raises:
        ValueError: a value that is not an integer of at least 3.
    """
    try:
        values = tuple(dict.fromkeys(int(v) for v in spec.split(",") if v.strip()))
    except ValueError:
        raise ValueError(f"--chunk-lengths must be comma-separated integers, not {spec!r}") from None
    if not values or min(values) < 3:
        raise ValueError(f"--chunk-lengths needs integers of at least 3, got {spec!r}")
    return values


def resolve_run_precisions(requested: tuple[str, ...], device) -> tuple[str, ...]:
    """The precisions to run, FP32 first (always present: the drift reference and the published dtype).

    ``auto`` (empty ``requested``): FP32 and BF16 (FP16 on CUDA devices without BF16).
    """
    from virnucpro.models.precision import supports_bf16

    if not requested:
        low = "fp16" if device.type == "cuda" and not supports_bf16(device) else "bf16"
        requested = ("fp32", low)
    return ("fp32", *[p for p in requested if p != "fp32"])


def primary_precision(precisions: tuple[str, ...]) -> str:
    """The precision our speed-ups are quoted at: BF16 if run, else the first low precision, else FP32."""
    if "bf16" in precisions:
        return "bf16"
    low = [p for p in precisions if p != "fp32"]
    return low[0] if low else "fp32"


def run_benchmark(options: BenchmarkOptions) -> dict[str, Any]:
    """Run every measurement and return the result dict (see :mod:`virnucpro.benchmark.report`)."""
    import torch

    from virnucpro import __version__
    from virnucpro.benchmark import cpu_side, engines, streaming, synthetic
    from virnucpro.models.precision import resolve_device

    device = resolve_device(options.device)
    size = options.size if options.size != "auto" else ("full" if device.type == "cuda" else "small")
    esm_shape, dna_shape = cost.SIZES[size]
    per_length = options.frames or DEFAULT_FRAMES[size]
    dna_per_length = dnabert_frames_per_length(options, size, per_length)
    repeats = max(1, options.repeats)
    precisions = resolve_run_precisions(options.precisions, device)
    primary = primary_precision(precisions)
    began = time.perf_counter()
    logger.info("benchmark: %s size on %s, %d frames per chunk length %s, precisions %s",
                size, device, per_length, list(options.chunk_lengths), ", ".join(precisions))

    dna_frames = synthetic.synthetic_frames(list(options.chunk_lengths), max(per_length, dna_per_length),
                                            options.seed)
    dna_frames = dna_frames.subset(dna_per_length)
    frames = dna_frames.subset(per_length)  # ESM-2: the first frames of each length
    ref_per_length = min(per_length, options.reference_frames or per_length)
    reference = frames.subset(ref_per_length)  # FP32 and the published baselines: the first of those
    ref_rows = {len(dna_frames): dna_frames.subset_indices(ref_per_length),
                len(frames): frames.subset_indices(ref_per_length)}  # reference rows by frame-set size
    common = dna_frames.subset_indices(ref_per_length)
    warmups_before = len(engines.WARMUPS)
    tokenizer = synthetic.train_dna_tokenizer(seed=options.seed)
    esm_tokens = [len(p) + 2 for p in frames.protein]
    ref_esm_tokens = [len(p) + 2 for p in reference.protein]
    tokenize, dna_ids = _tokenize_dna(dna_frames.nucleotide, tokenizer)
    dna_tokens_all = [len(ids) for ids in dna_ids]
    dna_tokens = [dna_tokens_all[i] for i in common]
    pretokenized = engines.PretokenizedDna(tokenizer, dna_frames.nucleotide, dna_ids)

    peaks = _matmul_peaks(device, precisions)
    result: dict[str, Any] = {
        "schema": SCHEMA,
        "virnucpro_version": __version__,
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": options.command or sys.argv,
        "device": engines.device_description(device),
        "size": size,
        "precisions": list(precisions),
        "primary_precision": primary,
        "models": {"esm2": esm_shape.describe(), "dnabert_s": dna_shape.describe()},
        "frames": _frames_summary(reference, ref_esm_tokens, dna_tokens),
        "esm2_frames": len(frames),
        "reference_frames": len(reference),
        "dnabert_s_frames": len(dna_frames),
        "repeats": repeats,
        "timing": "warm-up pass on the whole frame set, then the best of the timed passes",
        "tokenize": tokenize,
        "matmul_peak": [
            {"dtype": p.dtype, "size": p.size, "iterations": p.iterations, "seconds": p.seconds,
             "tflops": p.tflops}
            for p in peaks.values()
        ],
    }

    runs: dict[tuple[str, str, str], Any] = {}
    records: list[dict[str, Any]] = []

    def record(model: str, impl: str, precision: str, shape, tokens, run, batch_tokens, batching) -> None:
        runs[(model, impl, precision)] = run
        records.append(_engine_record(model, impl, precision, shape, tokens, run, batch_tokens, batching,
                                      peaks, device, result["device"].get("name")))
        logger.info("%s %s %s: %.3f s, %.1f frames/s", model, impl, precision, run.seconds,
                    len(tokens) / run.seconds)

    # ESM-2, ours at each precision, then fair-esm's forward (the published method).
    esm_tokenize: dict[str, dict[str, Any]] = {}
    for precision in precisions:
        dtype = _dtype(precision)
        mode = options.compile_fp32 if precision == "fp32" else options.compile
        embedder = engines.build_esm2_ours(esm_shape, device, dtype, options.seed, mode)
        engines.warm_engine(embedder, "esm2", precision, options.batch_tokens)
        its = reference if precision == "fp32" else frames
        began_tokens = time.perf_counter()
        pre = engines.pretokenize_esm(embedder, its.protein, options.batch_tokens)
        tokenize_seconds = time.perf_counter() - began_tokens
        budget = pre.budget
        run = engines.timed_embed(lambda _s: engines.embed_pretokenized_esm(embedder, pre),
                                  its.protein, None, device, repeats)
        record("esm2", "ours", precision, esm_shape, esm_tokens if its is frames else ref_esm_tokens, run, budget,
               f"<= {budget} padded tokens")
        records[-1].update(tokenize_seconds=tokenize_seconds, batches_tokenized_in_timed_passes=pre.tokenized_late,
                           compiled=embedder.compiled, **batch_fill(pre))
        esm_tokenize[precision] = _rate(len(pre), tokenize_seconds, batches=len(pre.batches),
                                        batches_tokenized_in_timed_passes=pre.tokenized_late)
        del embedder
        engines.release(device)
    tokenize["esm2"] = {
        **esm_tokenize[precisions[0]], "in_timed_passes": False, "by_precision": esm_tokenize,
        "what": "residue codes and every batch's padded token matrix (+ mean windows), in the engine's batch "
                "plan, made before the timed passes; the published baseline tokenises inside its passes",
    }
    if not options.skip_baseline:
        from virnucpro.models.esm2_reference import published_embed

        model, alphabet = engines.build_esm2_published(esm_shape, device, options.seed)
        run = engines.timed_embed(
            lambda s: published_embed(model, alphabet, s, toks_per_batch=PUBLISHED_ESM_BATCH_TOKENS),
            reference.protein, None, device, repeats)
        record("esm2", "published", "fp32", esm_shape, ref_esm_tokens, run, PUBLISHED_ESM_BATCH_TOKENS,
               f"fair-esm forward, <= {PUBLISHED_ESM_BATCH_TOKENS} tokens (+1 per sequence)")
        del model
        engines.release(device)

    # DNABERT-S, ours at each precision, then one sequence per forward in FP32.
    from virnucpro.models.dnabert_s import default_batch_tokens

    for precision in precisions:
        mode = options.compile_fp32 if precision == "fp32" else options.compile
        embedder = engines.build_dnabert(dna_shape, pretokenized, device, _dtype(precision), options.seed, mode)
        engines.warm_engine(embedder, "dnabert_s", precision, options.batch_tokens)
        its_dna = reference.nucleotide if precision == "fp32" else dna_frames.nucleotide
        run = engines.timed_embed(lambda s: embedder.embed(s, batch_tokens=options.batch_tokens),
                                  its_dna, None, device, repeats)
        budget = options.batch_tokens or default_batch_tokens(device, embedder.encoder.config, embedder.dtype)
        record("dnabert_s", "ours", precision, dna_shape, dna_tokens if precision == "fp32" else dna_tokens_all,
               run, budget, f"<= {budget} padded tokens")
        records[-1]["compiled"] = embedder.compiled
        del embedder
        engines.release(device)
    if not options.skip_baseline:
        embedder = engines.build_dnabert(dna_shape, pretokenized, device, torch.float32, options.seed)
        run = engines.timed_embed(lambda s: embedder.embed(s, batch_tokens=1),
                                  reference.nucleotide, None, device, repeats)
        record("dnabert_s", "published", "fp32", dna_shape, dna_tokens, run, None,
               "one sequence per forward (our encoder as stand-in for the HF remote code)")
        del embedder
        engines.release(device)

    result["engines"] = records
    result["speedup"] = _speedups(runs, primary, options.skip_baseline)
    result["warmup"] = engines.WARMUPS[warmups_before:]
    # Drift and baseline agreement compare the frames every engine embedded: the reference frames.
    for run in runs.values():
        if len(run.embeddings) != len(reference):
            run.embeddings = run.embeddings[ref_rows[len(run.embeddings)]]
    result["drift"] = _drift(runs, precisions, options.seed)
    result["baseline_agreement"] = _baseline_agreement(runs)

    logger.info("CPU stages on one core ...")
    cpu_bp = options.cpu_bp or DEFAULT_CPU_BP[size]
    chunk_length = max(options.chunk_lengths)
    stages = cpu_side.measure_cpu_stages(cpu_bp, chunk_length, tokenizer, options.seed)
    result["cpu_side"] = _cpu_summary(stages, cpu_bp, chunk_length, result["speedup"], device, size)
    measured_gpu = result["speedup"]["pipeline"]["ours_frames_per_s"] if device.type == "cuda" and size == "full" else None
    result["cpu_side"]["serial"] = cpu_side.serial_account(
        cpu_side.measure_run_stages(cpu_bp, chunk_length, options.seed), gpu_frames_per_s=measured_gpu,
        streamed=streaming.measure_streamed_serial(cpu_bp, chunk_length, options.seed,
                                                   shard_size=streaming.shard_size_for(cpu_bp, chunk_length)))
    result["targets"] = evaluate_targets(result)
    result["seconds_total"] = time.perf_counter() - began
    result["notes"] = _notes(result)
    return result


# --------------------------------------------------------------------------- pieces


def dnabert_frames_per_length(options: BenchmarkOptions, size: str, per_length: int) -> int:
    """DNABERT-S frames per chunk length: ``--dnabert-frames``, else at full size (with the default
    ``--frames``) enough for :data:`DNABERT_FULL_FRAMES` in all, else ``per_length``; never fewer
    than ``per_length`` (the drift comparison needs the ESM-2 frames among them)."""
    if options.dnabert_frames is not None:
        return max(per_length, options.dnabert_frames)
    if options.frames is None and size == "full":
        return max(per_length, -(-DNABERT_FULL_FRAMES // max(1, len(options.chunk_lengths))))
    return per_length


def _dtype(precision: str):
    import torch

    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def _matmul_peaks(device, precisions: tuple[str, ...]) -> dict[str, Any]:
    """Measured matmul rates: every run precision, plus BF16 on CUDA (the MFU reference there)."""
    from virnucpro.benchmark.engines import measure_matmul_peak
    from virnucpro.models.precision import supports_bf16

    wanted = list(precisions)
    if device.type == "cuda" and supports_bf16(device) and "bf16" not in wanted:
        wanted.append("bf16")
    peaks = {}
    for precision in wanted:
        peaks[precision] = measure_matmul_peak(device, _dtype(precision))
        logger.info("matmul peak %s: %.2f TFLOP/s", precision, peaks[precision].tflops)
    return peaks


def mfu_reference(device_type: str, precision: str, peaks: dict[str, Any]) -> tuple[str, float | None]:
    """Which measured peak an engine's MFU is taken against: ``(dtype, TFLOP/s)``.

    On CUDA: the BF16 matmul peak for every precision (the device's tensor-core
    peak; an FP32 engine then shows how much of it it leaves unused). On the CPU:
    the peak of the engine's own dtype (the CPU has no separate BF16 unit to compare with).
    """
    key = "bf16" if device_type == "cuda" and "bf16" in peaks else precision
    peak = peaks.get(key)
    return key, (peak.tflops if peak is not None else None)


def batch_fill(pre) -> dict[str, Any]:
    """How full an ESM-2 batch plan is: ``batches``, ``full_batches`` (no room left for one more sequence
    of the batch's width), ``batch_widths`` (distinct padded widths). MFU wants at least 8 full batches
    at one frame length: a small tail batch is mostly overhead."""
    full, widths = 0, set()
    for (_start, count), (toks, _window) in pre.batches.items():
        width = int(toks.shape[1])
        widths.add(width)
        full += (count + 1) * width > pre.budget
    return {"batches": len(pre.batches), "full_batches": int(full), "batch_widths": sorted(widths)}


def _engine_record(model, impl, precision, shape, tokens, run, batch_tokens, batching, peaks, device,
                   device_name=None) -> dict:
    from virnucpro.benchmark.peaks import UNKNOWN, datasheet_peak

    flops = shape.total_flops(tokens)
    extra = {"repeat_seconds": run.repeat_seconds, "warmup_seconds": run.warmup_seconds}
    tflops = flops / run.seconds / 1e12
    ref_dtype, ref_tflops = mfu_reference(device.type, precision, peaks)
    sheet = datasheet_peak(device_name) if device.type == "cuda" else None
    return {
        "model": model,
        "implementation": impl,
        "precision": precision,
        "frames": len(tokens),
        "tokens": int(sum(tokens)),
        "seconds": run.seconds,
        "frames_per_s": len(tokens) / run.seconds,
        "tokens_per_s": sum(tokens) / run.seconds,
        "flops": flops,
        "tflops": tflops,
        "mfu": tflops / ref_tflops if ref_tflops else None,
        "mfu_reference": f"{ref_dtype} matmul peak measured on this {device.type} in this run",
        "mfu_datasheet": tflops / sheet.tflops if sheet else None,
        "datasheet_peak_tflops": sheet.tflops if sheet else None,
        "datasheet_peak": f"{sheet.device} dense BF16 {sheet.tflops:g} TFLOP/s ({sheet.source})" if sheet
        else UNKNOWN,
        "peak_memory_bytes": run.peak_memory_bytes,
        "peak_memory_kind": run.peak_memory_kind,
        "batch_tokens": batch_tokens,
        "batching": batching,
        **extra,
    }


def _frames_summary(frames: FrameSet, esm_tokens: list[int], dna_tokens: list[int]) -> dict[str, Any]:
    by_length = {}
    lengths = np.asarray(frames.chunk_lengths)
    for length in sorted(set(frames.chunk_lengths)):
        sel = lengths == length
        by_length[str(length)] = {
            "frames": int(sel.sum()),
            "protein_aa_mean": float(np.mean([len(p) for p, s in zip(frames.protein, sel) if s])),
            "dna_bp_mean": float(np.mean([len(n) for n, s in zip(frames.nucleotide, sel) if s])),
            "esm2_tokens_mean": float(np.asarray(esm_tokens)[sel].mean()),
            "dnabert_s_tokens_mean": float(np.asarray(dna_tokens)[sel].mean()),
        }
    return {
        "total": len(frames),
        "by_chunk_length": by_length,
        "source": "F1 frames of synthetic coding chunks (random sense codons); DNA tokenised by a "
                  "4096-token BPE vocabulary trained on random DNA",
    }


def _speedups(runs: dict, primary: str, skipped: bool) -> dict[str, Any]:
    """Ours (at the primary precision) over the published method, per model and for both together.

    Engines may embed different frame counts (DNABERT-S gets more at full
    size), so rates are compared: seconds per frame of each model add up to
    the pipeline's seconds per frame.
    """
    out: dict[str, Any] = {"ours_precision": primary, "baseline": None if skipped else "published fp32"}
    ours_per_frame = pub_per_frame = 0.0
    for model in ("esm2", "dnabert_s"):
        ours = runs[(model, "ours", primary)]
        pub = runs.get((model, "published", "fp32"))
        ours_rate = len(ours.embeddings) / ours.seconds
        pub_rate = len(pub.embeddings) / pub.seconds if pub else None
        ours_per_frame += 1 / ours_rate
        out[model] = {"ours_seconds": ours.seconds, "ours_frames_per_s": ours_rate,
                      "published_seconds": pub.seconds if pub else None, "published_frames_per_s": pub_rate,
                      "factor": ours_rate / pub_rate if pub_rate else None}
        if pub_rate:
            pub_per_frame += 1 / pub_rate
    out["pipeline"] = {
        "ours_frames_per_s": 1 / ours_per_frame,
        "published_frames_per_s": 1 / pub_per_frame if pub_per_frame else None,
        "factor": pub_per_frame / ours_per_frame if pub_per_frame else None,
        "definition": "1 / (ESM-2 seconds per frame + DNABERT-S seconds per frame), best steady-state passes",
    }
    return out


def _rate(frames: int, seconds: float, **extra: Any) -> dict[str, Any]:
    return {"frames": frames, "seconds": seconds, "frames_per_s": frames / seconds if seconds > 0 else None,
            **extra}


def _tokenize_dna(nucleotides: list[str], tokenizer) -> tuple[dict[str, Any], list[list[int]]]:
    """Tokenise the DNABERT-S frames outside the timed passes; returns ``{"dnabert_s": timing}`` and the ids
    (ESM-2's entry is added per precision, with its batch plan)."""
    began = time.perf_counter()
    ids = tokenizer.encode(nucleotides)
    seconds = time.perf_counter() - began
    return {"dnabert_s": {**_rate(len(nucleotides), seconds), "in_timed_passes": False}}, ids


def _drift(runs: dict, precisions: tuple[str, ...], seed: int) -> list[dict[str, Any]]:
    """Each low precision against our FP32: embedding cosine per model and classifier labels."""
    from virnucpro.benchmark.drift import classify, cosine_summary, label_agreement, random_classifier

    ref_dna = runs[("dnabert_s", "ours", "fp32")].embeddings.numpy()
    ref_esm = runs[("esm2", "ours", "fp32")].embeddings.numpy()
    ref_features = np.concatenate([ref_dna, ref_esm], axis=1)
    classifier = random_classifier(ref_features.shape[1], ref_features, seed)
    ref_labels = classify(classifier, ref_features)
    out = []
    for precision in precisions:
        if precision == "fp32":
            continue
        dna = runs[("dnabert_s", "ours", precision)].embeddings.numpy()
        esm = runs[("esm2", "ours", precision)].embeddings.numpy()
        labels = classify(classifier, np.concatenate([dna, esm], axis=1))
        out.append({
            "precision": precision,
            "reference": "fp32 (ours)",
            "esm2": cosine_summary(ref_esm, esm),
            "dnabert_s": cosine_summary(ref_dna, dna),
            "labels": label_agreement(ref_labels, labels).as_dict(),
            "classifier": "random MLPClassifier (features -> 512 -> 2), BatchNorm statistics and output "
                          "bias calibrated on the FP32 features so about half the frames are 'virus'",
        })
    return out


def _baseline_agreement(runs: dict) -> dict[str, Any] | None:
    """Our FP32 against the published FP32 (a correctness check: cosine should be 1 - 1e-6 or closer)."""
    from virnucpro.benchmark.drift import cosine_summary

    out = {}
    for model in ("esm2", "dnabert_s"):
        pub = runs.get((model, "published", "fp32"))
        if pub is not None:
            ours = runs[(model, "ours", "fp32")]
            out[model] = cosine_summary(pub.embeddings.numpy(), ours.embeddings.numpy())
    return out or None


def _cpu_summary(stages, cpu_bp: int, chunk_length: int, speedup: dict, device, size: str) -> dict[str, Any]:
    from virnucpro.benchmark.cpu_side import GPUS_COMPARED, cpu_frames_per_s

    per_core = cpu_frames_per_s(stages)
    if device.type == "cuda" and size == "full":
        per_gpu = speedup["pipeline"]["ours_frames_per_s"]
        source = f"measured here: ours at {speedup['ours_precision']}, both models, this GPU"
    else:
        per_gpu = cost.SPEC8_H100_FRAMES_PER_S
        source = (f"SPEC 8 ceiling ({cost.SPEC8_H100_FRAMES_PER_S:.0f} frames/s per H100); "
                  "no full-size GPU run here")
    demand = GPUS_COMPARED * per_gpu
    return {
        "threads": 1,
        "input_bp": cpu_bp,
        "chunk_length": chunk_length,
        "stages": [{"name": s.name, "frames": s.frames, "seconds": s.seconds, "frames_per_s": s.frames_per_s}
                   for s in stages],
        "frames_per_s_per_core": per_core,
        "gpu_demand": {"gpus": GPUS_COMPARED, "frames_per_s_per_gpu": per_gpu,
                       "frames_per_s": demand, "source": source},
        "cores_needed": math.ceil(demand / per_core) if per_core > 0 else None,
    }


def evaluate_targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets for one H100, each with PASS, FAIL or NOT MEASURED and why."""
    device = result["device"]
    on_full_gpu = device["type"] == "cuda" and result["size"] == "full"
    if not on_full_gpu:
        why = "needs a CUDA GPU and --size full" + ("" if device["type"] == "cuda" else " (no GPU here)")
    else:
        name = str(device.get("name", ""))
        why = "" if "H100" in name else f"target is for an H100; measured on {name}"
    primary = result["primary_precision"]

    def engine(model: str) -> dict | None:
        return next((e for e in result["engines"] if e["model"] == model and e["implementation"] == "ours"
                     and e["precision"] == primary), None)

    bf16 = next((d for d in result["drift"] if d["precision"] == "bf16"), None)
    # MFU targets are judged against the datasheet dense BF16 peak (the conventional figure).
    values = {
        "esm2_mfu": (engine("esm2") or {}).get("mfu_datasheet") if primary == "bf16" else None,
        "dnabert_s_mfu": (engine("dnabert_s") or {}).get("mfu_datasheet") if primary == "bf16" else None,
        "pipeline_speedup": result["speedup"]["pipeline"]["factor"],
        "bf16_cosine_min": min(bf16["esm2"]["cosine_min"], bf16["dnabert_s"]["cosine_min"]) if bf16 else None,
    }
    text = {
        "esm2_mfu": "ESM-2 3B BF16 MFU >= 55% of the datasheet dense BF16 peak",
        "dnabert_s_mfu": "DNABERT-S BF16 MFU >= 35% of the datasheet dense BF16 peak",
        "pipeline_speedup": "pipeline >= 10x published",
        "bf16_cosine_min": "BF16 cosine >= 0.999 for every frame vs FP32 (both models)",
    }
    out = []
    for name, threshold in TARGETS.items():
        value = values[name]
        if value is None or not on_full_gpu:
            # A small-size or CPU figure is no measurement of the target: leave it out here
            # (it stays in "engines", "speedup" and "drift").
            value, status = None, "NOT MEASURED"
            note = why or ("datasheet peak unknown for this device" if name.endswith("mfu") and primary == "bf16"
                           else "not run (see --precision / --skip-baseline)")
        else:
            status = "PASS" if value >= threshold else "FAIL"
            note = why
        out.append({"name": name, "description": text[name], "threshold": threshold, "value": value,
                    "status": status, "note": note})
    return out


def _notes(result: dict[str, Any]) -> list[str]:
    notes = [
        "Random weights at real shapes (no downloaded model); FLOPs from shapes: "
        "layers * (2 * matmul_params_per_layer + 4 * T * d) per token, real tokens only (no padding).",
        "The published DNABERT-S code (Hugging Face remote code) cannot run here; its stand-in is our "
        "encoder in FP32 with one sequence per forward.",
        "Drift is measured on random weights; run --precision-check on your own input with the real "
        "models before a large run.",
    ]
    if result["size"] == "small":
        notes.insert(0, "SMALL size: few layers and narrow widths (same code paths); throughput, MFU and "
                        "speed-ups here say nothing about the real models on a GPU.")
    return notes
