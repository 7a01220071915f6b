"""The workers' idle time at the end of a run, with and without the tail split (issue 26).

Runs ``predict --workers W --models demo`` on the tiny fixture's contigs repeated ``--copies``
times (ids made unique), alternately with the code without the tail split (``--baseline``: a
checkout of the commit before it) and with this checkout, ``--repeats`` times each. From each
``run_summary.json``: every worker's wait at the end (the run's last task end minus its own),
the longest of them, the wall time and the shard count.

Usage (from the repository root)::

    git archive <commit-before> | (mkdir -p /tmp/base && tar -x -C /tmp/base)
    python scripts/bench_tail_split.py --baseline /tmp/base --copies 10 --shard-size 500 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONTIGS = ROOT / "tests" / "data" / "tiny_reference" / "contigs.fa"
FIXTURE_MODELS = ROOT / "tests" / "data" / "tiny_reference" / "models"
#: ``--models fixture``: the tiny real-shape fixture models (their DNABERT-S and ESM-2 tasks take
#: unequal times, as the published pair's do), on CPU in FP32.
FIXTURE_ARGS = ("--esm-model", str(FIXTURE_MODELS / "esm2_t36_tiny.pt"), "--dnabert-model",
                str(FIXTURE_MODELS / "dnabert_tiny"), "--model-path", str(FIXTURE_MODELS / "classifier_tiny.pth"),
                "--precision", "fp32", "--offline")


def make_input(path: Path, copies: int) -> None:
    """The fixture's records ``copies`` times, each copy's ids prefixed ``cN_`` and its sequences
    rotated by ``37 N`` bases, so the copies' frames differ (identical frames are embedded once)."""
    records: list[list[str]] = []
    for line in CONTIGS.read_text().splitlines():
        if line.startswith(">"):
            records.append([line[1:], ""])
        elif records:
            records[-1][1] += line.strip()
    with path.open("w") as out:
        for copy in range(copies):
            for name, seq in records:
                turn = (37 * copy) % max(1, len(seq))
                out.write(f">c{copy}_{name}\n{seq[turn:] + seq[:turn]}\n")


def one_run(code: Path, fasta: Path, out: Path, workers: int, shard_size: int, models: str) -> dict:
    """One predict run of the code in ``code``; what its summary says about the end of the run."""
    env = dict(os.environ, PYTHONPATH=str(code))
    model_args = ("--models", "demo") if models == "demo" else FIXTURE_ARGS
    subprocess.run([sys.executable, "-m", "virnucpro", "-q", "predict", str(fasta), "-o", str(out), *model_args,
                    "--no-dashboard", "--workers", str(workers), "--shard-size", str(shard_size)],
                   env=env, check=True, cwd=code)
    summary = json.loads((out / "run_summary.json").read_text())
    ends = [w["last_task_end_s"] for w in summary["workers"]]
    sizes = [s["frames"] for s in json.loads((out / "work" / "translate.json").read_text())["shards"]]
    reused = sum(summary["counts"].get(f"{kind}_reused_frames", 0) for kind in ("dnabert", "esm"))
    return {"waits": [round(max(ends) - e, 3) for e in ends], "wall": summary["wall_seconds"],
            "shards": len(sizes), "last_sizes": sizes[-6:], "reused": reused, "frames": sum(sizes)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True, help="a checkout without the tail split")
    parser.add_argument("--copies", type=int, default=10)
    parser.add_argument("--shard-size", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", choices=("demo", "fixture"), default="demo")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}")
    results: dict[str, list[dict]] = {"without tail split": [], "with tail split": []}
    with tempfile.TemporaryDirectory() as tmp:
        fasta = Path(tmp) / "input.fa"
        make_input(fasta, args.copies)
        for repeat in range(args.repeats):
            for name, code in (("without tail split", args.baseline), ("with tail split", ROOT)):
                run = one_run(code, fasta, Path(tmp) / f"{name.replace(' ', '-')}-{repeat}", args.workers,
                              args.shard_size, args.models)
                results[name].append(run)
                print(f"{name} #{repeat + 1}: waits at the end {run['waits']} s, wall {run['wall']} s, "
                      f"{run['frames']} frames ({run['reused']} reused) in {run['shards']} shards, last sizes "
                      f"{run['last_sizes']}", flush=True)
    print(f"load average after: {os.getloadavg()}")
    print("| code | runs | longest wait at the end (s): each run | median | wall (s): median | shards |")
    print("| --- | ---: | --- | ---: | ---: | ---: |")
    for name, runs in results.items():
        longest = [max(r["waits"]) for r in runs]
        print(f"| {name} | {len(runs)} | {', '.join(f'{x:.3f}' for x in longest)} | "
              f"{statistics.median(longest):.3f} | {statistics.median(r['wall'] for r in runs):.2f} | "
              f"{runs[0]['shards']} |")


if __name__ == "__main__":
    main()
