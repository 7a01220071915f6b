#!/usr/bin/env python3
"""One-command GPU acceptance: every check of issue 13, one JSON with a verdict per check.

Usage::

    python scripts/gpu_acceptance.py --json acceptance.json          # on one H100/H200, < 8 minutes
    python scripts/gpu_acceptance.py --quick --json acceptance.json  # same code paths, tiny, on the CPU

Each check has a time limit (seconds, enforced with an interval timer; a check
over its limit is recorded as failed and the next one runs) and returns a
verdict: ``pass``, ``fail`` or ``skipped`` (always with a ``reason``; on a
machine without a GPU the reason says so). A check that raises is recorded as
``fail`` with the error; the script goes on. The exit status is 0 when no check
failed, 1 otherwise. The checks (see ``CHECKS``):

environment, attention_backends, benchmark (ESM-2 3B and DNABERT-S at full
size, steady state, BF16, with FP32 and published references on a few frames),
compilation, esm2_mfu, dnabert_s_mfu, bf16_cosine, fair_esm_agreement,
batched_vs_unbatched, forced_oom, worker_faults, predict_demo, benchmark_targets.

Limits are set from the work (:mod:`virnucpro.benchmark.acceptance`): the
benchmark's is its FLOPs at a floor rate plus a fixed allowance. Engine warm-up
and compilation run outside every limit: a check's clock stops while an engine
warms up, and that time is charged to one compile allowance for the run; compile
seconds are reported per model. ``--quick`` goes through the same path on the
CPU, compilation included where a C++ compiler exists. ``--markdown`` prints the
row of ``.planning/BENCHMARKS.md``'s GPU table that this run measured.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

logger = logging.getLogger("gpu_acceptance")

SCHEMA = "virnucpro-gpu-acceptance/1"
TOTAL_BUDGET_S = 470.0
"""The whole run must fit 8 minutes on one H100/H200, compilation included: a check whose limit no
longer fits what is left is skipped with that reason (the most telling checks come first)."""
NO_GPU = "no GPU: needs CUDA (this run is on the CPU)"


class CheckTimeout(Exception):
    """Raised in the main thread when a check runs past its budget."""


@dataclass
class Context:
    """What the checks share: mode, device, scratch directory and earlier results."""

    quick: bool
    device: torch.device
    workdir: Path
    results: dict[str, dict[str, Any]]
    benchmark: dict[str, Any] | None = None
    compile_used_s: float = 0.0
    """Warm-up seconds charged to the compile allowance so far."""

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"


def verdict(ok: bool, **details: Any) -> dict[str, Any]:
    """A pass/fail result with its details."""
    return {"verdict": "pass" if ok else "fail", **details}


def skipped(reason: str, **details: Any) -> dict[str, Any]:
    """A check that did not run, and why."""
    return {"verdict": "skipped", "reason": reason, **details}


# --------------------------------------------------------------------------- checks


def check_environment(ctx: Context) -> dict[str, Any]:
    """Versions, the device, and the measured BF16 (and FP32) matmul peak."""
    from virnucpro import __version__
    from virnucpro.benchmark.engines import device_description, measure_matmul_peak

    size = 256 if ctx.quick else None
    peaks = {}
    for name, dtype in (("bf16", torch.bfloat16), ("fp32", torch.float32)):
        peak = measure_matmul_peak(ctx.device, dtype, size=size, min_seconds=0.05 if ctx.quick else 0.5)
        peaks[name] = {"size": peak.size, "iterations": peak.iterations, "tflops": peak.tflops}
    from virnucpro.benchmark.peaks import UNKNOWN, datasheet_peak
    from virnucpro.models.fusion import compile_cache_dir, compile_unavailable_reason

    description = device_description(ctx.device)
    sheet = datasheet_peak(str(description.get("name"))) if ctx.cuda else None
    info = {"virnucpro": __version__, "python": sys.version.split()[0], "device": description,
            "cuda_available": torch.cuda.is_available(), "gpus_visible": torch.cuda.device_count(),
            "matmul_peak": peaks,
            "datasheet_peak": {"device": sheet.device, "tflops": sheet.tflops, "source": sheet.source} if sheet
            else UNKNOWN,
            "compile_unavailable": compile_unavailable_reason(ctx.device), "compile_cache": compile_cache_dir(),
            "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES")}
    return verdict(peaks["bf16"]["tflops"] > 0, **info)


def _attention_rows(device: torch.device, dtype: torch.dtype) -> tuple[str, list[dict[str, Any]]]:
    """Rows of the models' own backend check if it exists, else of the fallback below."""
    try:
        from virnucpro.models.attention_check import check_attention_backends  # written with the engines
    except ImportError:
        return "scripts/gpu_acceptance.py fallback", _fallback_attention_rows(device, dtype)
    return "virnucpro.models.attention_check", list(check_attention_backends(device, dtype))


def _fallback_attention_rows(device: torch.device, dtype: torch.dtype) -> list[dict[str, Any]]:
    """Each SDPA backend alone at ESM-2 3B shapes (unmasked, key padding) against an FP64 softmax."""
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    backends = {"math": SDPBackend.MATH, "flash": SDPBackend.FLASH_ATTENTION,
                "efficient": SDPBackend.EFFICIENT_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION}
    tolerance = {torch.float32: 1e-5, torch.bfloat16: 1.6e-2, torch.float16: 2e-3}[dtype]
    rows = []
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(4, 40, 168, 64, generator=gen) for _ in range(3))
    lengths = torch.linspace(168, 84, 4).round().long()
    keep = (torch.arange(168)[None, :] < lengths[:, None])[:, None, None, :]
    for shape, mask in (("esm2_unmasked", None), ("esm2_padded", keep)):
        qd, kd, vd = (t.to(device=device, dtype=dtype) for t in (q, k, v))
        scores = (qd.double().cpu() @ kd.double().cpu().transpose(-1, -2)) / 8.0
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        ref = torch.softmax(scores, -1) @ vd.double().cpu()
        for name, backend in backends.items():
            row: dict[str, Any] = {"backend": name, "shape": shape, "dtype": str(dtype), "device": str(device)}
            try:
                with torch.inference_mode(), sdpa_kernel([backend]):
                    out = F.scaled_dot_product_attention(qd, kd, vd, attn_mask=None if mask is None
                                                         else mask.to(device))
            except RuntimeError as exc:
                row.update(verdict="unavailable", detail=str(exc).splitlines()[0][:200])
                rows.append(row)
                continue
            error = float((out.double().cpu() - ref).abs().max())
            row.update(max_abs_error=error, tolerance=tolerance,
                       verdict="pass" if error <= tolerance * max(1.0, float(ref.abs().max())) else "fail")
            rows.append(row)
    return rows


def _allowed_backends() -> tuple[str, ...]:
    """The backends the engines may use (the models' pinned set when that module exists)."""
    try:
        from virnucpro.models.attention_check import allowed_backend_names
    except ImportError:
        return ("flash", "efficient", "math")
    return tuple(allowed_backend_names())


def check_attention_backends(ctx: Context) -> dict[str, Any]:
    """Every SDPA backend at our shapes against FP64. Fails when an *allowed* backend fails; a failing
    backend outside the allowed set (cuDNN by default) is reported, and must stay out."""
    dtypes = (torch.bfloat16, torch.float32) if ctx.cuda else (torch.float32,)
    rows: list[dict[str, Any]] = []
    source = ""
    for dtype in dtypes:
        source, found = _attention_rows(ctx.device, dtype)
        rows += found
    allowed = _allowed_backends()
    failed = [f"{r['backend']}/{r['shape']}/{r['dtype']}" for r in rows if r.get("verdict") == "fail"]
    failed_allowed = [f for f in failed if f.split("/")[0] in allowed]
    ran = [r for r in rows if r.get("verdict") == "pass"]
    details: dict[str, Any] = {"source": source, "allowed": list(allowed), "failed": failed, "rows": rows}
    if not ctx.cuda:
        details["note"] = "CPU kernels only; " + NO_GPU
    return verdict(bool(ran) and not failed_allowed, failed_allowed=failed_allowed, **details)


def benchmark_options(ctx: Context):
    """The benchmark run of the acceptance: one frame length, BF16 on many frames, FP32 and the
    published engines on a few; low-precision engines compiled (``--quick``: where a compiler is),
    FP32 references eager."""
    from virnucpro.benchmark.acceptance import acceptance_workload
    from virnucpro.benchmark.run import BenchmarkOptions

    work = acceptance_workload(ctx.quick)
    return work, BenchmarkOptions(
        device=str(ctx.device), size="small" if ctx.quick else "full", frames=work.esm_frames,
        dnabert_frames=work.dnabert_frames, reference_frames=work.reference_frames,
        chunk_lengths=(work.chunk_length,), cpu_bp=20_000 if ctx.quick else 300_000,
        precisions=("fp32", "bf16"), repeats=work.repeats, command=sys.argv,
        compile="on" if ctx.quick else "auto", compile_fp32="off")


def _peak(ctx: Context, dtype: str) -> float:
    """TFLOP/s the floor rates scale: the datasheet BF16 peak for BF16 on a known GPU, else the rate
    the environment check measured (measured here if it did not run)."""
    env = ctx.results.get("environment") or {}
    sheet = env.get("datasheet_peak")
    if dtype == "bf16" and ctx.cuda and isinstance(sheet, dict):
        return float(sheet["tflops"])
    measured = ((env.get("matmul_peak") or {}).get(dtype) or {}).get("tflops")
    if measured:
        return float(measured)
    from virnucpro.benchmark.engines import measure_matmul_peak

    return measure_matmul_peak(ctx.device, getattr(torch, {"bf16": "bfloat16", "fp32": "float32"}[dtype]),
                               size=256 if ctx.quick else None, min_seconds=0.05).tflops


def benchmark_limit(ctx: Context) -> float:
    """The benchmark check's limit: its FLOPs at the floor rates plus a fixed allowance."""
    from virnucpro.benchmark.acceptance import benchmark_limit as limit_for

    work, options = benchmark_options(ctx)
    limit, _how = limit_for(work, options.size, _peak(ctx, "bf16"), _peak(ctx, "fp32"), ctx.quick)
    return limit


def check_benchmark(ctx: Context) -> dict[str, Any]:
    """The benchmark (virnucpro.benchmark.run) at full size on the GPU, small size in quick mode."""
    from virnucpro.benchmark.acceptance import benchmark_limit as limit_for
    from virnucpro.benchmark.run import run_benchmark

    work, options = benchmark_options(ctx)
    _limit, reckoning = limit_for(work, options.size, _peak(ctx, "bf16"), _peak(ctx, "fp32"), ctx.quick)
    ctx.benchmark = run_benchmark(options)
    engines = [{k: e[k] for k in ("model", "implementation", "precision", "frames", "frames_per_s", "tflops",
                                  "mfu", "mfu_datasheet", "datasheet_peak", "seconds", "repeat_seconds",
                                  "tokenize_seconds", "compiled", "batches", "full_batches", "batch_widths")
                if k in e}
               for e in ctx.benchmark["engines"]]
    return verdict(bool(engines), size=ctx.benchmark["size"], engines=engines,
                   warmup=ctx.benchmark["warmup"], speedup=ctx.benchmark["speedup"]["pipeline"],
                   tokenize=ctx.benchmark["tokenize"], limit_reckoning=reckoning,
                   frames={"esm2": ctx.benchmark["esm2_frames"], "dnabert_s": ctx.benchmark["dnabert_s_frames"],
                           "reference": ctx.benchmark["reference_frames"], "chunk_length": work.chunk_length})


def check_compilation(ctx: Context) -> dict[str, Any]:
    """Every engine that was to compile did, with no fallback to eager; compile seconds per model.

    Compiling is expected on CUDA (``--compile auto``) and in ``--quick`` where a C++ compiler
    exists; where it is impossible the reason is reported (and on a GPU that fails the check:
    production would run eager)."""
    missing = _needs_benchmark(ctx)
    if missing:
        return missing
    from virnucpro.models.fusion import compile_unavailable_reason

    assert ctx.benchmark is not None
    warm = ctx.benchmark["warmup"]
    low = [w for w in warm if w["precision"] != "fp32"]
    reason = compile_unavailable_reason(ctx.device)
    details = {"compile_seconds": {f"{w['model']}/{w['precision']}": round(w["compile_seconds"], 2) for w in warm},
               "warmup_seconds": {f"{w['model']}/{w['precision']}": round(w["seconds"], 2) for w in warm},
               "compiled": {f"{w['model']}/{w['precision']}": w["compiled"] for w in warm},
               "fallbacks": {f"{w['model']}/{w['precision']}": w["fallback_reason"] for w in warm
                             if w.get("fallback_reason")},
               "compile_allowance_used_s": round(ctx.compile_used_s, 1)}
    if reason is not None:
        if ctx.cuda:
            return verdict(False, reason=f"compilation unavailable: {reason}", **details)
        return skipped(f"{NO_GPU}; and no compiler here ({reason})", **details)
    return verdict(bool(low) and all(w["compiled"] for w in low) and not details["fallbacks"], **details)


def _engine(ctx: Context, model: str, precision: str) -> dict[str, Any] | None:
    assert ctx.benchmark is not None
    return next((e for e in ctx.benchmark["engines"] if e["model"] == model and e["implementation"] == "ours"
                 and e["precision"] == precision), None)


def _needs_benchmark(ctx: Context) -> dict[str, Any] | None:
    if ctx.benchmark is None:
        return skipped("the benchmark check did not produce a result")
    return None


def _mfu_check(ctx: Context, model: str, target: float) -> dict[str, Any]:
    """MFU both ways; the verdict is on the datasheet figure."""
    from virnucpro.benchmark.acceptance import MIN_FULL_BATCHES

    missing = _needs_benchmark(ctx)
    if missing:
        return missing
    engine = _engine(ctx, model, "bf16") or {}
    figures = {"mfu_datasheet": engine.get("mfu_datasheet"), "mfu_measured_peak": engine.get("mfu"),
               "datasheet_peak": engine.get("datasheet_peak"), "frames_per_s": engine.get("frames_per_s"),
               "target": target, "judged_on": "datasheet dense BF16 peak", "frames": engine.get("frames"),
               "compiled": engine.get("compiled")}
    if model == "esm2":
        figures.update(batches=engine.get("batches"), full_batches=engine.get("full_batches"),
                       batch_widths=engine.get("batch_widths"))
    if not ctx.cuda or ctx.quick:
        return skipped(f"{NO_GPU}; MFU not measured", **figures)
    if engine.get("mfu_datasheet") is None:
        return skipped(f"datasheet peak unknown for {engine.get('datasheet_peak')}; MFU against the measured "
                       "peak only", **figures)
    if model == "esm2" and (engine.get("full_batches") or 0) < MIN_FULL_BATCHES:
        return verdict(False, reason=f"fewer than {MIN_FULL_BATCHES} full batches at one frame length", **figures)
    return verdict(engine["mfu_datasheet"] >= target, **figures)


def check_esm2_mfu(ctx: Context) -> dict[str, Any]:
    """ESM-2 3B BF16 steady-state MFU >= 55% of the datasheet dense BF16 peak (>= 8 full batches)."""
    return _mfu_check(ctx, "esm2", 0.55)


def check_dnabert_s_mfu(ctx: Context) -> dict[str, Any]:
    """DNABERT-S BF16 steady-state MFU >= 35% of the datasheet dense BF16 peak (20K frames)."""
    return _mfu_check(ctx, "dnabert_s", 0.35)


def check_bf16_cosine(ctx: Context) -> dict[str, Any]:
    """BF16 against FP32, per frame, both models: every cosine >= 0.999."""
    missing = _needs_benchmark(ctx)
    if missing:
        return missing
    assert ctx.benchmark is not None
    drift = next((d for d in ctx.benchmark["drift"] if d["precision"] == "bf16"), None)
    if drift is None:
        return skipped("BF16 was not run")
    lows = {m: drift[m]["cosine_min"] for m in ("esm2", "dnabert_s")}
    return verdict(min(lows.values()) >= 0.999, cosine_min=lows, labels=drift["labels"],
                   note="" if ctx.cuda else "tiny random models on the CPU")


def check_fair_esm_agreement(ctx: Context) -> dict[str, Any]:
    """Our FP32 ESM-2 against fair-esm's own forward on the same weights, on this device."""
    missing = _needs_benchmark(ctx)
    if missing:
        return missing
    assert ctx.benchmark is not None
    agreement = (ctx.benchmark.get("baseline_agreement") or {}).get("esm2")
    if agreement is None:
        return skipped("the published engine was not run")
    return verdict(agreement["cosine_min"] >= 1 - 1e-5, esm2=agreement)


def check_batched_vs_unbatched(ctx: Context) -> dict[str, Any]:
    """FP32 embeddings batched by token budget against one frame per batch (SPEC 9: 1e-5); ESM-2 batched
    runs compiled (as production does; warmed outside the limit), one at a time eager."""
    from virnucpro.benchmark import engines, flops, synthetic

    esm_shape, dna_shape = flops.SIZES["small" if ctx.quick else "full"]
    if not ctx.quick:  # every layer is the same: 4 layers at full width test the kernels at real shapes
        esm_shape = flops.TransformerShape(esm_shape.name, 4, esm_shape.dim, esm_shape.heads, esm_shape.ffn,
                                           esm_shape.ffn_matrices, esm_shape.vocab)
    frames = synthetic.synthetic_frames([300, 500], 4 if ctx.quick else 16, seed=3)
    out: dict[str, Any] = {}
    mode = "on" if ctx.quick else "auto"
    esm = engines.build_esm2_ours(esm_shape, ctx.device, torch.float32, compile=mode)
    warm = engines.warm_engine(esm, "esm2", "fp32")
    batched = esm.embed(frames.protein)
    out["esm2_compiled"] = esm.compiled
    del esm
    eager = engines.build_esm2_ours(esm_shape, ctx.device, torch.float32, compile="off")
    single = eager.embed(frames.protein, batch_tokens=1)
    out["esm2_max_abs"] = float((batched - single).abs().max())
    out["esm2_compile_seconds"] = warm["compile_seconds"]
    del eager
    engines.release(ctx.device)
    tokenizer = synthetic.train_dna_tokenizer(vocab_size=min(dna_shape.vocab, 512), corpus_bp=40_000)
    dna = engines.build_dnabert(dna_shape, tokenizer, ctx.device, torch.float32, compile="off")
    batched, single = dna.embed(frames.nucleotide), dna.embed(frames.nucleotide, batch_tokens=1)
    out["dnabert_s_max_abs"] = float((batched - single).abs().max())
    del dna
    engines.release(ctx.device)
    return verdict(max(out["esm2_max_abs"], out["dnabert_s_max_abs"]) <= 1e-5, frames=len(frames), tolerance=1e-5,
                   **out)


def check_forced_oom(ctx: Context) -> dict[str, Any]:
    """Fill the GPU so the first batch runs out of memory: the engine must halve its budget, give the
    same output (within 1e-5: the batch layout changes) and leave no memory behind."""
    if not ctx.cuda:
        return skipped(NO_GPU)
    from virnucpro.benchmark import engines, flops, synthetic

    _esm, dna_shape = flops.SIZES["full"]
    tokenizer = synthetic.train_dna_tokenizer(vocab_size=4096)
    frames = synthetic.synthetic_frames([500], 2000, seed=5).nucleotide
    dna = engines.build_dnabert(dna_shape, tokenizer, ctx.device, torch.bfloat16)
    engines.warm_engine(dna, "dnabert_s", "bf16")  # compiled as in production: OOM must pass through it
    reference = dna.embed(frames, batch_tokens=16_384)
    torch.cuda.synchronize()
    baseline = torch.cuda.memory_allocated()
    free, _total = torch.cuda.mem_get_info()
    hog = torch.empty(max(0, free - (3 << 30)), dtype=torch.uint8, device=ctx.device)  # leave 3 GiB
    try:
        squeezed = dna.embed(frames, batch_tokens=2_000_000)  # one batch of every frame: cannot fit
        budget_after = dna._budget_cap
    finally:
        del hog
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
    leaked = torch.cuda.memory_allocated() - baseline
    diff = float((reference - squeezed).abs().max())
    recovered = budget_after is not None and budget_after < 2_000_000
    # The out-of-memory error must pass through the compiled layers, not switch them to eager.
    fallback = getattr(dna.encoder._layer_fn, "fallback_reason", None)
    return verdict(recovered and diff <= 1e-2 and leaked <= 0 and fallback is None,
                   compiled=dna.compiled, compile_fallback=fallback, budget_after_oom=budget_after,
                   max_abs_vs_unconstrained=diff, leaked_bytes=leaked,
                   note="BF16, different batch layout: equal within BF16 rounding, not bytes")


def check_worker_faults(ctx: Context) -> dict[str, Any]:
    """Two workers on one device; one has a sticky device error on every task (a device broken from
    the start: whatever share of the tasks it is handed, the fault is exercised) and one task SIGKILLs
    its worker once: every task must finish, outputs complete."""
    from virnucpro.pipeline.workqueue.manager import BatchQueueManager, Task, TaskFailed, WorkerDied
    from virnucpro.pipeline.workqueue.worker import FAULT_DEVICE_ERROR_ENV

    device = "cuda:0" if ctx.cuda else "cpu"
    directory = ctx.workdir / "worker_faults"
    directory.mkdir(parents=True, exist_ok=True)
    n_tasks, per_task = (6, 3) if ctx.quick else (12, 100)
    tasks = [Task(f"t{i:02d}", per_task, {"seed": i, "frames": per_task, "output": str(directory / f"t{i:02d}.npy"),
                                          "kill_marker": str(directory / "killed") if i == 3 else None})
             for i in range(n_tasks)]
    events: list[Any] = []
    # Small models on the GPU too: this checks fault handling, not speed (full size costs a minute).
    init_args = {"size": "small", "precision": "fp32" if ctx.quick else "bf16",
                 "vocab": 256 if ctx.quick else 4096, "corpus_bp": 20_000 if ctx.quick else 100_000}
    previous = os.environ.get(FAULT_DEVICE_ERROR_ENV)
    os.environ[FAULT_DEVICE_ERROR_ENV] = "1:1"
    try:
        manager = BatchQueueManager("virnucpro.benchmark.acceptance_workers:init_acceptance_worker",
                                    "virnucpro.benchmark.acceptance_workers:process_acceptance_task",
                                    [device, device], init_args, max_task_retries=1, on_event=events.append,
                                    progress_interval=0.05, init_timeout=300)
        report = manager.run(tasks)
    finally:
        if previous is None:
            os.environ.pop(FAULT_DEVICE_ERROR_ENV, None)
        else:
            os.environ[FAULT_DEVICE_ERROR_ENV] = previous
    faults = [e.task_key for e in events if isinstance(e, TaskFailed) and "illegal memory access" in e.error]
    killed = [e.task_key for e in events if isinstance(e, WorkerDied) and e.exitcode == -signal.SIGKILL]
    complete = all(Path(t.payload["output"]).exists() and np.load(t.payload["output"]).shape[0] == per_task
                   for t in tasks)
    details = {"device": device, "tasks": n_tasks, "finished": len(report.finished), "failed": report.failed,
               "device_faults_on": faults, "sigkilled_tasks": killed, "worker_errors": report.worker_errors}
    if not faults:
        return {"verdict": "fail", "reason": "the faulty worker never took a task (fault not exercised)",
                **details}
    return verdict(report.ok and complete and killed == ["t03"], **details)


def check_predict_demo(ctx: Context) -> dict[str, Any]:
    """``predict --models demo --gpus 0`` in FP32 and BF16 against a CPU FP32 run of the same input
    (eager: the compiled engines' numbers are checked by batched_vs_unbatched and the pipeline check,
    and compiling the demo models would cost this check most of its time)."""
    if not ctx.cuda:
        return skipped(f"{NO_GPU}; the GPU runs are compared with a CPU run")
    from virnucpro.benchmark.pipeline_check import read_scores

    contigs = REPO_ROOT / "tests" / "data" / "tiny_reference" / "contigs.fa"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "VIRNUCPRO_CACHE": str(ctx.workdir / "cache")}
    runs = {"cpu": ["--device", "cpu", "--precision", "fp32"], "gpu_fp32": ["--gpus", "0", "--precision", "fp32"],
            "gpu_bf16": ["--gpus", "0", "--precision", "bf16"]}
    scores: dict[str, dict[str, tuple[float, float]]] = {}
    commands: dict[str, list[str]] = {}
    for name, extra in runs.items():
        out = ctx.workdir / f"predict_{name}"
        command = [sys.executable, "-m", "virnucpro", "predict", str(contigs), "-o", str(out), "--models", "demo",
                   "--no-dashboard", "--force", "--compile", "off", *extra]
        commands[name] = command
        done = subprocess.run(command, env=env, capture_output=True, timeout=300)
        if done.returncode != 0:
            return verdict(False, run=name, command=command, stderr=done.stderr.decode(errors="replace")[-2000:])
        scores[name] = read_scores(out / "prediction_results.txt")
    cpu = scores["cpu"]
    out: dict[str, Any] = {"commands": commands, "frames": len(cpu)}
    ok = True
    for name, limit in (("gpu_fp32", 1e-5), ("gpu_bf16", 5e-2)):
        got = scores[name]
        if sorted(got) != sorted(cpu):
            return verdict(False, run=name, reason="the GPU run scored other frames than the CPU run")
        diffs = [max(abs(got[k][0] - cpu[k][0]), abs(got[k][1] - cpu[k][1])) for k in cpu]
        flips = [k for k in cpu if (got[k][1] > got[k][0]) != (cpu[k][1] > cpu[k][0])
                 and abs(cpu[k][1] - cpu[k][0]) >= 1e-6]  # SPEC 9 knife-edge frames are counted apart
        out[name] = {"max_abs_score": max(diffs), "label_flips": len(flips), "tolerance": limit}
        ok = ok and max(diffs) <= limit and (name == "gpu_bf16" or not flips)
    return verdict(ok, **out)


def pipeline_limit(ctx: Context) -> float:
    """The pipeline check's limit (see :func:`virnucpro.benchmark.pipeline_check.pipeline_limit`)."""
    from virnucpro.benchmark.pipeline_check import pipeline_limit as limit_for

    return limit_for(ctx.device, ctx.quick, ctx.benchmark)


def check_pipeline(ctx: Context) -> dict[str, Any]:
    """``virnucpro predict`` at real model sizes (random weights written here, no download) over every
    visible GPU and several shards, against a one-GPU run (SPEC 9); frames/s against the benchmark's
    per-GPU rate x GPUs; every worker's models compiled (see :mod:`virnucpro.benchmark.pipeline_check`)."""
    from virnucpro.benchmark.pipeline_check import run_pipeline_check

    return run_pipeline_check(ctx.device, ctx.quick, ctx.workdir, REPO_ROOT, ctx.benchmark)


def check_benchmark_targets(ctx: Context) -> dict[str, Any]:
    """The benchmark's targets (MFU, pipeline speed-up, BF16 cosine): all PASS on a full-size GPU run."""
    missing = _needs_benchmark(ctx)
    if missing:
        return missing
    assert ctx.benchmark is not None
    targets = ctx.benchmark["targets"]
    if not ctx.cuda or ctx.quick:
        return skipped(f"{NO_GPU}; targets not measured", targets=targets)
    return verdict(all(t["status"] == "PASS" for t in targets), targets=targets)


Limit = float | Callable[[Context], float]

# name -> (function, time limit in seconds on the GPU, or a function of the context for one set from the
# work). The fixed ones: environment (two matmul loops of >= 0.5 s, 8192^3), attention_backends (FP64
# references on the CPU at ESM-2 shapes), batched_vs_unbatched (4 full-width ESM-2 layers, 16 frames,
# FP32), forced_oom (one DNABERT-S set twice), worker_faults (two worker processes starting and loading
# small models), predict_demo (three `predict` processes on tiny models): each several times what its
# work takes. Checks that read the benchmark's result take no time.
CHECKS: dict[str, tuple[Callable[[Context], dict[str, Any]], Limit]] = {
    "environment": (check_environment, 15),
    "attention_backends": (check_attention_backends, 20),
    "benchmark": (check_benchmark, benchmark_limit),
    "compilation": (check_compilation, 1),
    "esm2_mfu": (check_esm2_mfu, 1),
    "dnabert_s_mfu": (check_dnabert_s_mfu, 1),
    "bf16_cosine": (check_bf16_cosine, 1),
    "fair_esm_agreement": (check_fair_esm_agreement, 1),
    "pipeline": (check_pipeline, pipeline_limit),
    "batched_vs_unbatched": (check_batched_vs_unbatched, 25),
    "forced_oom": (check_forced_oom, 25),
    "worker_faults": (check_worker_faults, 30),
    "predict_demo": (check_predict_demo, 40),
    "benchmark_targets": (check_benchmark_targets, 1),
}


# --------------------------------------------------------------------------- runner


def run_check(name: str, fn: Callable[[Context], dict[str, Any]], budget: float, ctx: Context) -> dict[str, Any]:
    """Run one check within ``budget`` seconds, engine warm-ups not counted; any error or overrun
    becomes a ``fail`` result.

    The clock: when the interval timer fires, the warm-up seconds spent since the check began
    (finished warm-ups, and the one in progress) that were not yet granted are granted as extra time,
    charged to :data:`~virnucpro.benchmark.acceptance.COMPILE_ALLOWANCE_S` for the whole run; only
    when nothing is left to grant, or the allowance is spent, does the check time out.
    """
    from virnucpro.benchmark import engines
    from virnucpro.benchmark.acceptance import COMPILE_ALLOWANCE_S

    began = time.monotonic()
    warm_before = engines.warmup_seconds_total()
    granted = [0.0]
    why = [f"over its time limit of {budget:.0f} s (warm-ups excluded)"]

    def on_alarm(_signum: int, _frame: Any) -> None:
        warming = engines.warming_seconds()
        owed = engines.warmup_seconds_total() - warm_before + warming - granted[0]
        if owed > 0.05:
            if ctx.compile_used_s + owed > COMPILE_ALLOWANCE_S:
                why[0] = (f"warm-up and compilation took over the run's allowance of {COMPILE_ALLOWANCE_S:.0f} s "
                          f"({ctx.compile_used_s + owed:.0f} s)")
                raise CheckTimeout()
            granted[0] += owed
            ctx.compile_used_s += owed
            signal.setitimer(signal.ITIMER_REAL, max(owed, 2.0 if warming else 0.05))
            return
        raise CheckTimeout()

    signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, budget)
    try:
        result = fn(ctx)
    except CheckTimeout:
        result = {"verdict": "fail", "reason": why[0]}
    except Exception as exc:  # noqa: BLE001 - a failed check is recorded, the next one runs
        result = {"verdict": "fail", "reason": f"{type(exc).__name__}: {exc}",
                  "traceback": traceback.format_exc()[-4000:]}
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    # Warm-ups that finished before the timer fired were not granted yet: charge them now.
    owed = engines.warmup_seconds_total() - warm_before - granted[0]
    if owed > 0:
        ctx.compile_used_s += owed
        granted[0] += owed
    result["seconds"] = round(time.monotonic() - began, 3)
    result["warmup_seconds"] = round(granted[0], 3)
    result["limit_s"] = round(budget, 1)
    logger.info("%-22s %-8s %6.1f s (of which warm-up %.1f s; limit %.0f s)%s", name, result["verdict"],
                result["seconds"], granted[0], budget, f"  ({result['reason']})" if result.get("reason") else "")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes on the CPU (the test suite runs this)")
    parser.add_argument("--json", dest="json_path", required=True, type=Path, help="where to write the result")
    parser.add_argument("--device", default=None, help="cuda:N or cpu (default: cuda:0 if there is one; cpu with --quick)")
    parser.add_argument("--only", default=None, help="comma-separated check names (default: all)")
    parser.add_argument("--markdown", action="store_true",
                        help="print the GPU table's row for .planning/BENCHMARKS.md (figures as measured)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    for noisy in ("virnucpro",):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    device_name = args.device or ("cpu" if args.quick or not torch.cuda.is_available() else "cuda:0")
    device = torch.device(device_name)
    wanted = list(CHECKS) if not args.only else [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in CHECKS]
    if unknown:
        parser.error(f"unknown check {unknown[0]!r}; choose from {', '.join(CHECKS)}")
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="virnucpro-acceptance-") as scratch:
        ctx = Context(args.quick, device, Path(scratch), {})
        for name in wanted:
            fn, limit = CHECKS[name]
            budget = float(limit(ctx) if callable(limit) else limit)
            left = TOTAL_BUDGET_S - (time.monotonic() - began)
            if args.quick:
                budget = max(budget, 60.0)  # a loaded CI machine: the CPU sizes are tiny, time is not
            elif left < budget:
                ctx.results[name] = skipped(f"not enough of the {TOTAL_BUDGET_S:g} s total left ({left:.0f} s; "
                                            f"limit {budget:.0f} s)")
                continue
            ctx.results[name] = run_check(name, fn, budget, ctx)
    result = {
        "schema": SCHEMA,
        "command": [sys.executable, *sys.argv] if argv is None else ["gpu_acceptance.py", *argv],
        "quick": args.quick,
        "device": str(device),
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seconds_total": round(time.monotonic() - began, 3),
        "compile_allowance_used_s": round(ctx.compile_used_s, 3),
        "checks": ctx.results,
        "verdicts": {name: r["verdict"] for name, r in ctx.results.items()},
    }
    from virnucpro.benchmark.acceptance import markdown_rows, table_row

    result["gpu_table"] = table_row(result)
    from virnucpro.benchmark.report import strict_json

    args.json_path.write_text(json.dumps(strict_json(result), indent=1, default=str) + "\n", encoding="utf-8")
    if args.markdown:
        sys.stdout.write(markdown_rows(result))
    failed = [n for n, r in ctx.results.items() if r["verdict"] == "fail"]
    logger.info("wrote %s: %d check(s), %d failed%s", args.json_path, len(ctx.results), len(failed),
                f" ({', '.join(failed)})" if failed else "")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
