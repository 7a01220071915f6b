"""The GPU acceptance's ``pipeline`` check: ``virnucpro predict`` at real model sizes, every visible GPU.

Random real-size models are written by :mod:`virnucpro.benchmark.model_files` (no
download); the run over every visible GPU and several shards is compared with a
one-GPU run (SPEC 9: every score within 1e-5, labels equal but for knife-edge
frames: each shard's batches are the same whatever GPU runs it); its frames/s,
end to end, are set against the benchmark's per-GPU rate x GPUs; and every
worker's ``compiled`` record in ``run_summary.json`` must be true on a GPU (a
fallback to eager, or no record, fails). On the CPU (``--quick``): small models,
two worker processes against the in-process run, eager.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

PIPELINE_SHARD = {True: 40, False: 1_000}
"""Frames per shard (``--quick``, GPU): several shards per worker."""
PIPELINE_BP = {True: 60_000, False: 2_500_000}
"""Input size: on a GPU about 4,500 kept frames of 500 bp chunks (a few seconds per GPU at the
benchmark's rate, so loading, warm-up and the shard queue all show in the end-to-end figure)."""


def pipeline_runs(device: torch.device) -> tuple[int, dict[str, list[str]]]:
    """The device options of the runs compared: every visible GPU, then one; on the CPU two worker
    processes, then the in-process run. Returns the GPU count (2 worker processes on the CPU) too."""
    if device.type != "cuda":
        return 2, {"workers_2": ["--workers", "2"], "one": ["--device", "cpu"]}
    count = torch.cuda.device_count()
    runs = {f"gpus_{count}": ["--gpus", ",".join(str(i) for i in range(count))]}
    if count > 1:
        runs["one"] = ["--gpus", "0"]
    return count, runs


def pipeline_limit(device: torch.device, quick: bool, benchmark: dict[str, Any] | None) -> float:
    """Seconds for the check: model files (ESM-2 3B drawn on the GPU, 5.6 GB written, 40 s), then per
    run: start and load (45 s), warm-up as long as the benchmark's BF16 warm-ups (a cold compile:
    the on-disk cache should make it far shorter), and the frames at a quarter of the benchmark's rate."""
    if quick:
        return 240.0
    _gpus, runs = pipeline_runs(device)
    bench = benchmark or {}
    rate = ((bench.get("speedup") or {}).get("pipeline") or {}).get("ours_frames_per_s") or 100.0
    warm = sum(w["seconds"] for w in bench.get("warmup", []) if w["precision"] != "fp32") or 120.0
    frames = PIPELINE_BP[False] / 500 * 0.9
    return 40.0 + len(runs) * (45.0 + warm + frames / (0.25 * rate))


def compiled_records(summary: Any, path: str = "") -> list[tuple[str, Any]]:
    """Every ``compiled`` entry in ``run_summary.json`` (per worker and model), with where it is."""
    found: list[tuple[str, Any]] = []
    if isinstance(summary, dict):
        for key, value in summary.items():
            if key == "compiled" and not isinstance(value, (dict, list)):
                found.append((path or "/", value))
            else:
                found += compiled_records(value, f"{path}/{key}")
    elif isinstance(summary, list):
        for index, value in enumerate(summary):
            found += compiled_records(value, f"{path}/{index}")
    return found


def read_scores(path: Path) -> dict[str, tuple[float, float]]:
    """``prediction_results.txt``: frame id -> (score1, score2)."""
    rows = {}
    with open(path, encoding="utf-8") as handle:
        next(handle)
        for line in handle:
            frame_id, _label, score1, score2 = line.rstrip("\n").split("\t")
            rows[frame_id] = (float(score1), float(score2))
    return rows


def run_pipeline_check(device: torch.device, quick: bool, workdir: Path, repo_root: Path,
                       benchmark: dict[str, Any] | None) -> dict[str, Any]:
    """The check itself; returns its result dict (``verdict`` pass/fail and the figures)."""
    from virnucpro.benchmark import synthetic
    from virnucpro.benchmark.model_files import write_random_models

    cuda = device.type == "cuda"
    began = time.monotonic()
    models = write_random_models(workdir / "pipeline_models", "small" if quick else "full",
                                 vocab=256 if quick else 4096, device=device)
    contigs = workdir / "pipeline_contigs.fa"
    synthetic.write_contigs(contigs, PIPELINE_BP[quick], seed=11, min_len=2_000, max_len=20_000)
    gpus, runs = pipeline_runs(device)
    precision = "fp32" if quick else "bf16"
    env = {**os.environ, "PYTHONPATH": str(repo_root)}  # the compile cache directory is inherited
    out: dict[str, Any] = {"gpus": gpus if cuda else None, "model_files_seconds": round(time.monotonic() - began, 1),
                           "models": {"esm2": models.esm_path.name, "size": "small" if quick else "full"},
                           "shard_size": PIPELINE_SHARD[quick], "precision": precision, "runs": {}}
    scores: dict[str, dict[str, tuple[float, float]]] = {}
    compiled: list[tuple[str, Any]] = []
    for name, extra in runs.items():
        target = workdir / f"pipeline_{name}"
        command = [sys.executable, "-m", "virnucpro", "predict", str(contigs), "-o", str(target),
                   *models.predict_args(), "--precision", precision, "--shard-size", str(PIPELINE_SHARD[quick]),
                   "--offline", "--no-dashboard", "--force", *extra]
        started = time.monotonic()
        done = subprocess.run(command, env=env, capture_output=True)
        seconds = time.monotonic() - started
        if done.returncode != 0:
            return {"verdict": "fail", "run": name, "command": command,
                    "stderr": done.stderr.decode(errors="replace")[-3000:], **out}
        summary = json.loads((target / "run_summary.json").read_text(encoding="utf-8"))
        frames = int(summary["counts"]["kept_frames"])
        records = compiled_records(summary)
        compiled += [(f"{name}{where}", value) for where, value in records]
        out["runs"][name] = {"command": command, "seconds": round(seconds, 2), "frames": frames,
                             "frames_per_s": frames / seconds if seconds > 0 else None,
                             "wall_seconds": summary.get("wall_seconds"), "devices": summary.get("devices"),
                             "stages": {k: {"frames_per_second": v.get("frames_per_second"), "seconds": v.get("seconds")}
                                        for k, v in (summary.get("stages") or {}).items()},
                             "compiled": records}
        scores[name] = read_scores(target / "prediction_results.txt")
    first = next(iter(runs))
    out["frames"] = out["runs"][first]["frames"]
    out["frames_per_s"] = out["runs"][first]["frames_per_s"]
    bench_rate = (((benchmark or {}).get("speedup") or {}).get("pipeline") or {}).get("ours_frames_per_s")
    if cuda and bench_rate and (benchmark or {}).get("size") == "full":
        out["benchmark_frames_per_s_per_gpu"] = bench_rate
        out["vs_benchmark"] = out["frames_per_s"] / (bench_rate * gpus)
        out["vs_benchmark_note"] = ("end to end (process start, model loading, warm-up and the shard queue "
                                    "included) over the benchmark's steady state x GPUs")
    ok = True
    if len(scores) > 1:
        base, other = scores[first], scores["one"]
        if sorted(base) != sorted(other):
            return {"verdict": "fail", "reason": "the runs scored different frames", **out}
        diffs = [max(abs(base[k][0] - other[k][0]), abs(base[k][1] - other[k][1])) for k in other]
        flips = [k for k in other if (base[k][1] > base[k][0]) != (other[k][1] > other[k][0])
                 and abs(other[k][1] - other[k][0]) >= 1e-6]
        out["vs_one"] = {"max_abs_score": max(diffs, default=0.0), "label_flips": len(flips), "tolerance": 1e-5}
        ok = max(diffs, default=0.0) <= 1e-5 and not flips
    else:
        out["vs_one"] = "one GPU visible: the run is the one-GPU run (SPEC 9 across GPU counts needs 2 or more)"
    out["compiled"] = [f"{where}={value}" for where, value in compiled]
    if cuda:
        eager = [where for where, value in compiled if value is not True]
        if not compiled:
            return {"verdict": "fail", "reason": "run_summary.json records no 'compiled' per worker and model", **out}
        if eager:
            return {"verdict": "fail", "reason": f"fell back to eager (or never compiled): {', '.join(eager)}", **out}
    return {"verdict": "pass" if ok else "fail", **out}
