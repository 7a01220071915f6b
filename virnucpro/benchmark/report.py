"""Benchmark output: the readable tables (rich) and the JSON file with the same figures.

JSON schema ``virnucpro-benchmark/1`` (top-level keys; see :func:`virnucpro.benchmark.run.run_benchmark`):

* ``schema``, ``virnucpro_version``, ``created_utc``, ``command``, ``seconds_total``, ``notes``
* ``device``: ``type``, ``name``, ``torch``, ``torch_threads``, ``cpu_count`` (+ CUDA details)
* ``size`` (``small``/``full``), ``precisions``, ``primary_precision``
* ``models``: per model its shape (layers, dim, heads, ffn, vocab, matmul_params)
* ``frames``: ``total``, ``by_chunk_length`` (frames, mean aa/bp/tokens), ``source``
* ``matmul_peak``: list of ``{dtype, size, iterations, seconds, tflops}``
* ``tokenize``: tokenising, done before the timed passes: ``dnabert_s`` ``{frames, seconds,
  frames_per_s, in_timed_passes}``; ``esm2`` the same at the first precision plus ``batches``,
  ``batches_tokenized_in_timed_passes`` (0 unless an out-of-memory re-plan), ``by_precision``, ``what``
* ``engines``: list of ``{model, implementation (ours|published), precision, frames, tokens,
  seconds, frames_per_s, tokens_per_s, flops, tflops, mfu (against the matmul rate measured in the
  run), mfu_reference, mfu_datasheet (against the device's datasheet dense BF16 peak; null where
  unknown), datasheet_peak_tflops, datasheet_peak (source, or "datasheet peak unknown"),
  peak_memory_bytes, peak_memory_kind, batch_tokens, batching, repeat_seconds, warmup_seconds}``;
  ours also ``compiled``; ESM-2 ``ours`` also ``tokenize_seconds``, ``batches_tokenized_in_timed_passes``,
  ``batches``, ``full_batches``, ``batch_widths``
* ``warmup``: per engine of ours ``{model, precision, seconds, compile_seconds, compiled,
  compile_enabled, fallback_reason, variants}`` (before any timing)
* ``esm2_frames``, ``reference_frames``: frames of the low-precision ESM-2 runs and of the FP32 and
  published runs (the drift and agreement reference)
* ``speedup``: ``ours_precision``, ``baseline``, ``esm2``/``dnabert_s`` ``{ours_seconds,
  published_seconds, factor}``, ``pipeline`` ``{ours_frames_per_s, published_frames_per_s, factor}``
* ``drift``: list of ``{precision, reference, esm2: {cosine_min, cosine_median, frames},
  dnabert_s: {...}, labels: {frames, agreement, flips, virus_to_others, others_to_virus, ...}}``
* ``baseline_agreement``: ours FP32 vs published FP32 cosine per model (null with --skip-baseline)
* ``cpu_side``: ``stages`` ``[{name, frames, seconds, frames_per_s}]``, ``frames_per_s_per_core``,
  ``gpu_demand`` ``{gpus, frames_per_s_per_gpu, frames_per_s, source}``, ``cores_needed``
* ``targets``: list of ``{name, description, threshold, value, status, note}``

Numbers that could not be measured are ``null`` (never NaN), so the file is strict JSON.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table

REQUIRED_KEYS = (
    "schema", "device", "size", "precisions", "models", "frames", "matmul_peak", "engines",
    "speedup", "drift", "baseline_agreement", "cpu_side", "targets", "notes",
)
ENGINE_KEYS = (
    "model", "implementation", "precision", "frames", "tokens", "seconds", "frames_per_s", "tokens_per_s",
    "flops", "tflops", "mfu", "mfu_reference", "mfu_datasheet", "datasheet_peak", "peak_memory_bytes", "peak_memory_kind", "batch_tokens",
)


def strict_json(value: Any) -> Any:
    """A copy of ``value`` with NaN/inf floats turned into None and numpy scalars into Python ones."""
    if isinstance(value, dict):
        return {str(k): strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(result: dict[str, Any], path: str | Path) -> None:
    """Write ``result`` as strict JSON (indented, NaN-free)."""
    text = json.dumps(strict_json(result), indent=2, allow_nan=False)
    Path(path).write_text(text + "\n", encoding="utf-8")


def _f(value: Any, fmt: str = "{:.3g}") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return fmt.format(value)


def _pct(value: Any) -> str:
    return _f(None if value is None else 100 * value, "{:.1f}%")


def _mib(value: Any) -> str:
    return _f(None if value is None else value / 2**20, "{:,.0f}")


def _cosines(row: dict[str, Any], fmt: str) -> list[str]:
    """ESM-2 min, ESM-2 median, DNABERT-S min, DNABERT-S median of a drift row."""
    return [_f(row[m].get(k), fmt) for m in ("esm2", "dnabert_s") for k in ("cosine_min", "cosine_median")]


def render(result: dict[str, Any], stream: TextIO | None = None) -> None:
    """Print the benchmark tables."""
    console = Console(file=stream, width=132)
    dev = result["device"]
    console.print(f"[bold]virnucpro benchmark[/bold]  size={result['size']}  device={dev['type']} "
                  f"({dev.get('name', '?')})  torch {dev['torch']}  threads={dev['torch_threads']}")
    for note in result.get("notes", []):
        console.print(f"  [dim]- {note}[/dim]")

    frames = Table(title="Synthetic frames")
    for col in ("chunk bp", "frames", "protein aa", "DNA bp", "ESM-2 tokens", "DNABERT-S tokens"):
        frames.add_column(col, justify="right")
    for length, row in result["frames"]["by_chunk_length"].items():
        frames.add_row(length, str(row["frames"]), _f(row["protein_aa_mean"], "{:.1f}"),
                       _f(row["dna_bp_mean"], "{:.1f}"), _f(row["esm2_tokens_mean"], "{:.1f}"),
                       _f(row["dnabert_s_tokens_mean"], "{:.1f}"))
    console.print(frames)

    peaks = Table(title="Matrix-multiply rate measured in this run (MFU denominator)")
    for col in ("dtype", "n (n x n x n)", "iterations", "TFLOP/s"):
        peaks.add_column(col, justify="right")
    for p in result["matmul_peak"]:
        peaks.add_row(p["dtype"], str(p["size"]), str(p["iterations"]), _f(p["tflops"]))
    console.print(peaks)

    eng = Table(title="Embedding engines (same frames)")
    for col in ("model", "impl", "prec", "s", "frames/s", "tokens/s", "TFLOP/s", "MFU sheet", "MFU meas.",
                "peak MiB", "batch"):
        eng.add_column(col, justify="right" if col not in ("model", "impl", "prec") else "left")
    for e in result["engines"]:
        eng.add_row(e["model"], e["implementation"], e["precision"], _f(e["seconds"]),
                    _f(e["frames_per_s"], "{:,.1f}"), _f(e["tokens_per_s"], "{:,.0f}"), _f(e["tflops"]),
                    _pct(e.get("mfu_datasheet")), _pct(e["mfu"]), _mib(e["peak_memory_bytes"]),
                    str(e["batch_tokens"] if e["batch_tokens"] is not None else "1 seq"))
    console.print(eng)
    if result["engines"]:
        first = result["engines"][0]
        console.print(f"  MFU sheet = achieved TFLOP/s / {first.get('datasheet_peak', 'datasheet peak unknown')}; "
                      f"MFU meas. = achieved / {first['mfu_reference']}; memory: {first['peak_memory_kind']}")
    for w in result.get("warmup") or []:
        console.print(f"  warm-up {w['model']} {w['precision']}: {w['seconds']:.1f} s, of which compiling "
                      f"{w['compile_seconds']:.1f} s; {'compiled' if w['compiled'] else 'eager'}"
                      + (f" (fell back: {w['fallback_reason']})" if w.get("fallback_reason") else ""))
    _render_tokenize(console, result.get("tokenize") or {})

    sp = result["speedup"]
    speed = Table(title=f"Speed-up: ours ({sp['ours_precision']}) over the published method (fp32)")
    for col in ("", "ours", "published", "speed-up"):
        speed.add_column(col, justify="right")
    for model in ("esm2", "dnabert_s"):
        speed.add_row(f"{model} (s)", _f(sp[model]["ours_seconds"]), _f(sp[model]["published_seconds"]),
                      _f(sp[model]["factor"], "{:.2f}x"))
    pipe = sp["pipeline"]
    speed.add_row("pipeline (frames/s)", _f(pipe["ours_frames_per_s"], "{:,.1f}"),
                  _f(pipe["published_frames_per_s"], "{:,.1f}"), _f(pipe["factor"], "{:.2f}x"))
    console.print(speed)

    if result["drift"] or result.get("baseline_agreement"):
        drift = Table(title="Precision drift (cosine per frame; labels of a calibrated random classifier)")
        for col in ("precision", "vs", "ESM-2 min", "ESM-2 median", "DNABERT-S min", "DNABERT-S median",
                    "label agreement", "flips"):
            drift.add_column(col, justify="right")
        for d in result["drift"]:
            labels = d["labels"]
            drift.add_row(d["precision"], d["reference"], *_cosines(d, "{:.6f}"), _pct(labels["agreement"]),
                          f"{labels['flips']}/{labels['frames']}")
        agreement = result.get("baseline_agreement") or {}
        if agreement:
            both = {m: agreement.get(m, {}) for m in ("esm2", "dnabert_s")}
            drift.add_row("fp32 ours", "fp32 published", *_cosines(both, "{:.7f}"), "", "")
        console.print(drift)

    cpu = result["cpu_side"]
    cpu_table = Table(title=f"CPU stages on one core ({cpu['input_bp']:,} bp synthetic contigs, "
                            f"chunks of {cpu['chunk_length']})")
    for col in ("stage", "frames", "s", "frames/s"):
        cpu_table.add_column(col, justify="right")
    for s in cpu["stages"]:
        cpu_table.add_row(s["name"], str(s["frames"]), _f(s["seconds"]), _f(s["frames_per_s"], "{:,.0f}"))
    cpu_table.add_row("all stages", "", "", _f(cpu["frames_per_s_per_core"], "{:,.0f}"))
    console.print(cpu_table)
    demand = cpu["gpu_demand"]
    console.print(f"  {demand['gpus']} GPUs' worth of frames: {demand['frames_per_s']:,.0f} frames/s "
                  f"({demand['source']}) -> about {cpu['cores_needed']} CPU cores for these stages")
    for line in (cpu.get("serial") or {}).get("lines", []):
        console.print(f"  {line}")

    targets = Table(title="Targets (one H100)")
    for col in ("target", "value", "status", "note"):
        targets.add_column(col)
    colour = {"PASS": "green", "FAIL": "red"}
    for t in result["targets"]:
        value = t["value"]
        if t["name"].endswith("mfu"):
            shown = _pct(value)
        else:
            shown = _f(value, "{:.6f}" if "cosine" in t["name"] else "{:.2f}x")
        status = t["status"]
        targets.add_row(t["description"], shown,
                        f"[{colour[status]}]{status}[/]" if status in colour else status, t["note"])
    console.print(targets)


def _render_tokenize(console: Console, tokenize: dict[str, Any]) -> None:
    """Tokenising, measured on its own (outside the engines' timed passes)."""
    if not tokenize:
        return
    table = Table(title="Tokenising (ours; not in the engines' timed passes)")
    for col in ("model", "frames", "s", "frames/s", "in timed passes"):
        table.add_column(col, justify="right" if col != "model" else "left")
    for model in ("esm2", "dnabert_s"):
        row = tokenize.get(model)
        if row:
            table.add_row(model, str(row["frames"]), _f(row["seconds"]), _f(row["frames_per_s"], "{:,.0f}"),
                          "yes" if row.get("in_timed_passes") else "no")
    console.print(table)


def render_precision_check(result: dict[str, Any], stream: TextIO | None = None) -> None:
    """Print the ``--precision-check`` table."""
    console = Console(file=stream, width=132)
    console.print(f"[bold]virnucpro benchmark --precision-check[/bold]  {result['frames']} frames sampled "
                  f"from {result['input']} (chunks of {result['chunk_length']}), "
                  f"device {result['device']['type']}")
    if result.get("notice"):
        console.print(f"  [yellow]{result['notice']}[/yellow]")
    table = Table(title="Against FP32 on the same frames")
    for col in ("precision", "ESM-2 min", "ESM-2 median", "DNABERT-S min", "DNABERT-S median",
                "labels agree", "flips", "v->o", "o->v", "max dP(virus)"):
        table.add_column(col, justify="right")
    for r in result["results"]:
        lab = r["labels"]
        table.add_row(r["precision"], *_cosines(r, "{:.6f}"),
                      _pct(lab["agreement"]), str(lab["flips"]), str(lab["virus_to_others"]),
                      str(lab["others_to_virus"]), _f(r["max_abs_virus_score_change"], "{:.2e}"))
    console.print(table)
    for r in result["results"]:
        if r["worst_frames"]:
            worst = ", ".join(f"{w['id']} ({w['cosine']:.5f})" for w in r["worst_frames"])
            console.print(f"  {r['precision']}: lowest ESM-2 cosine: {worst}")
