"""10 samples in one ``predict`` run against 10 separate runs: wall time and the time that overlaps nothing.

Usage (from the repository root)::

    PYTHONPATH=$PWD python scripts/bench_many_samples.py [--rounds 2] [--whole] [--baseline TREE]
        [-- EXTRA PREDICT OPTIONS]

The 10 samples are ``examples/example_contigs.fa`` cut in 10 (3 records each, the last one 4),
or with ``--whole`` 10 copies of the whole file (31 records each).
Each round runs the 10 separate runs, then the one run, alternating which goes first from one
round to the next; the tables of every sample are compared byte for byte between the two.

"The time that overlaps nothing" of a call (10 separate runs, or the one run) is the part of its
wall time (from launching the first process to the end of the last) during which no embedding
window of any sample is open. A sample's embedding window runs from its first embedding task's
start (the earliest ``stages.dnabert|esm.first_shard_s`` of its ``run_summary.json``) to its last
task's end (the latest ``workers[].last_task_end_s``), both put on one time line with the
summary's ``start_time``. Inside a window a worker may still wait (for translate, or while the
other kind's task runs), so this counts only the time outside every window: process starts,
imports, worker spawns and model loads before the first task, translate before it, scoring and
tables after the last, and (one run per sample) everything between two samples' windows.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMO = ["--models", "demo", "--no-dashboard", "--device", "cpu", "--precision", "fp32"]
TABLES = ("prediction_results.txt", "prediction_results_highestscore.csv", "chunk_scores.tsv", "contig_summary.tsv")
SAMPLES = 10


def _samples(work: Path, whole: bool = False) -> list[Path]:
    records: list[list[str]] = []
    for line in (ROOT / "examples" / "example_contigs.fa").read_text().splitlines():
        if line.startswith(">"):
            records.append([line, ""])
        else:
            records[-1][1] += line
    paths = []
    for i in range(SAMPLES):
        part = records if whole else records[3 * i:3 * i + 3] if i < SAMPLES - 1 else records[3 * i:]
        path = work / f"s{i}.fa"
        path.write_text("".join(f"{h}\n{s}\n" for h, s in part))
        paths.append(path)
    return paths


def _predict(args: list[str], code: Path, cwd: Path) -> None:
    # Run from ``cwd`` (not the repository): ``python -m`` puts the working directory first on the path.
    env = {**os.environ, "PYTHONPATH": f"{code}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    result = subprocess.run([sys.executable, "-m", "virnucpro", "predict", *args], env=env, cwd=cwd,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    if result.returncode != 0:
        raise SystemExit(f"predict {' '.join(args)} failed:\n{result.stderr.decode()[-2000:]}")


def _window(folder: Path) -> tuple[float, float] | None:
    """The sample's embedding window on the wall clock (None when it embedded nothing)."""
    summary = json.loads((folder / "run_summary.json").read_text())
    firsts = [summary["stages"][k]["first_shard_s"] for k in ("dnabert", "esm")
              if summary["stages"].get(k, {}).get("first_shard_s") is not None]
    lasts = [w["last_task_end_s"] for w in summary["workers"] if w.get("last_task_end_s") is not None]
    if not firsts or not lasts:
        return None
    # A tree older than "start_time" (--baseline): the summary is written as the run ends.
    start = summary.get("start_time", (folder / "run_summary.json").stat().st_mtime - summary["wall_seconds"])
    return start + min(firsts), start + max(lasts)


def _overlapping_nothing(began: float, ended: float, windows: list[tuple[float, float]]) -> dict[str, float]:
    """Seconds of [began, ended] outside every window: before the first, between, after the last."""
    merged: list[list[float]] = []
    for start, end in sorted((max(began, s), min(ended, e)) for s, e in windows):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    covered = sum(end - start for start, end in merged)
    before = merged[0][0] - began if merged else ended - began
    after = ended - merged[-1][1] if merged else 0.0
    idle = (ended - began) - covered
    return {"wall": ended - began, "idle": idle, "before": before, "after": after,
            "between": idle - before - after}


def _separate(work: Path, inputs: list[Path], extra: list[str]) -> dict[str, float]:
    out = work / "separate"
    subprocess.run(["rm", "-rf", str(out)], check=True)
    began = time.time()
    for path in inputs:
        _predict([str(path), "-o", str(out / path.stem), *DEMO, *extra], ROOT, work)
    ended = time.time()
    return _overlapping_nothing(began, ended, [w for p in inputs if (w := _window(out / p.stem))])


def _one(work: Path, inputs: list[Path], extra: list[str], code: Path = ROOT, name: str = "one") -> dict[str, float]:
    out = work / name
    subprocess.run(["rm", "-rf", str(out)], check=True)
    began = time.time()
    _predict([*map(str, inputs), "-o", str(out), *DEMO, *extra], code, work)
    ended = time.time()
    return _overlapping_nothing(began, ended, [w for p in inputs if (w := _window(out / p.stem))])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--whole", action="store_true", help="each sample is the whole example file "
                        "(31 records) instead of 3 of its records")
    parser.add_argument("--baseline", type=Path, help="also time the one run with the code of this tree "
                        "(e.g. a `git archive` of an earlier commit)")
    parser.add_argument("extra", nargs="*", help="more predict options (after --), e.g. --workers 2")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    print(f"load average at start: {load:.2f}; samples: {'the whole example' if args.whole else '3 records'} "
          f"each; extra options: {' '.join(args.extra) or '(none)'}")
    print("| round | call | wall s | overlaps nothing s | before first task | between | after last task |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        inputs = _samples(work, args.whole)
        for round_number in range(1, args.rounds + 1):
            calls = [("10 separate", _separate), ("one run", _one)]
            if args.baseline is not None:
                baseline = args.baseline.resolve()
                calls.append(("one run, baseline tree",
                              lambda w, i, e: _one(w, i, e, baseline, "baseline")))  # noqa: B023
            if round_number % 2 == 0:
                calls.reverse()
            results = {}
            for name, call in calls:
                results[name] = figures = call(work, inputs, args.extra)
                print(f"| {round_number} | {name} | {figures['wall']:.2f} | {figures['idle']:.2f} | "
                      f"{figures['before']:.2f} | {figures['between']:.2f} | {figures['after']:.2f} |", flush=True)
            sep, one = results["10 separate"], results["one run"]
            print(f"| {round_number} | ratio separate / one | {sep['wall'] / one['wall']:.2f}x | "
                  f"{sep['idle'] / one['idle']:.2f}x | | | |", flush=True)
            if args.baseline is not None:
                base = results["one run, baseline tree"]
                print(f"| {round_number} | ratio baseline / one | {base['wall'] / one['wall']:.2f}x | "
                      f"{base['idle'] / one['idle']:.2f}x | | | |", flush=True)
            for path in inputs:
                for table in TABLES:
                    if not filecmp.cmp(work / "separate" / path.stem / table, work / "one" / path.stem / table,
                                       shallow=False):
                        raise SystemExit(f"{path.stem}/{table} differs between the separate and the one run")
        print(f"tables identical ({SAMPLES} samples x {len(TABLES)} tables, every round); "
              f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
