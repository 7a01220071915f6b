"""Peak resident memory of a whole process tree, and synthetic short reads to measure it on.

``/usr/bin/time -v`` reports one process; a ``virnucpro predict`` run is a
parent, its workers and its score pool. This script runs a command, samples
the summed RSS and PSS of the command and all of its descendants from ``/proc``
every ``--interval`` seconds, and prints one JSON line with the peaks, the wall
time and the exit status. PSS (proportional set size) counts a page shared by N
processes 1/N in each, so read-only pages shared between workers (torch's
libraries, memory-mapped weights) are not counted once per worker.

Examples::

    python scripts/tree_memory.py reads 200000 --length 150 -o reads.fa
    python scripts/tree_memory.py reads 2000000 --framed 0.01 -o reads_few_frames.fa
    python scripts/tree_memory.py run -- python -m virnucpro predict reads.fa -o OUT --models demo
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return kids
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                kids.extend(int(p) for p in fh.read().split())
        except OSError:
            continue
    return kids


def _rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, IndexError, ValueError):
        return 0


def _pss_bytes(pid: int) -> int:
    """The process's PSS from ``/proc/PID/smaps_rollup`` (0 when it cannot be read)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, IndexError, ValueError):
        pass
    return 0


def tree_rss(root: int, each: dict[int, int] | None = None) -> tuple[int, int, int]:
    """Summed RSS and PSS in bytes of ``root`` and all its descendants, and how many processes that is.

    ``each``: updated with the largest RSS seen of every process (by pid).
    """
    total, pss, count, todo = 0, 0, 0, [root]
    while todo:
        pid = todo.pop()
        rss = _rss_bytes(pid)
        total += rss
        pss += _pss_bytes(pid)
        count += 1
        if each is not None:
            each[pid] = max(each.get(pid, 0), rss)
        todo.extend(_children(pid))
    return total, pss, count


def run_measured(cmd: list[str], interval: float) -> dict[str, float | int]:
    """Run ``cmd``; the peak summed RSS and PSS of its process tree, the wall time and the exit status."""
    start = time.monotonic()
    proc = subprocess.Popen(cmd)
    peak, peak_pss, peak_procs = 0, 0, 0
    each: dict[int, int] = {}
    while proc.poll() is None:
        rss, pss, procs = tree_rss(proc.pid, each)
        peak_pss = max(peak_pss, pss)
        if rss > peak:
            peak, peak_procs = rss, procs
        time.sleep(interval)
    others = sorted((v for pid, v in each.items() if pid != proc.pid), reverse=True)
    return {"rc": proc.returncode, "wall_s": round(time.monotonic() - start, 1),
            "peak_tree_rss_mib": round(peak / 2**20, 1), "peak_tree_pss_mib": round(peak_pss / 2**20, 1),
            "processes_at_peak": peak_procs,
            "peak_parent_mib": round(each.get(proc.pid, 0) / 2**20, 1),
            "peak_children_mib": [round(v / 2**20, 1) for v in others[:4]]}


#: A stop codon in each of the three frames of both strands (TAA at offsets 0, 4, 8; TTA, the
#: reverse complement of TAA, at 11, 15, 19): a read holding it keeps no frame.
STOPS_IN_ALL_FRAMES = b"TAAATAAATAATTAGTTAGTTA"


def write_reads(path: Path, count: int, length: int, seed: int, framed: float = 1.0) -> None:
    """``count`` uniformly random reads of ``length`` bp (IDs ``read<i>``), as FASTA.

    ``framed`` < 1: only that fraction of the reads is left random (about 0.56 kept frames
    each at 150 bp); the others carry :data:`STOPS_IN_ALL_FRAMES` and keep no frame, so a run
    holds many records but embeds few frames (per-record state without the embedding cost).
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    bases = np.frombuffer(b"ACGT", dtype=np.uint8)
    motif = np.frombuffer(STOPS_IN_ALL_FRAMES, dtype=np.uint8)
    with open(path, "wb") as out:
        block = 10_000
        for first in range(0, count, block):
            n = min(block, count - first)
            seqs = bases[rng.integers(0, 4, size=(n, length))]
            if framed < 1.0:
                stopped = rng.random(n) >= framed
                seqs[stopped, : len(motif)] = motif
            out.write(b"".join(b">read%d\n%s\n" % (first + i, seqs[i].tobytes()) for i in range(n)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    reads = sub.add_parser("reads", help="write synthetic random reads as FASTA")
    reads.add_argument("count", type=int)
    reads.add_argument("--length", type=int, default=150)
    reads.add_argument("--seed", type=int, default=0)
    reads.add_argument("--framed", type=float, default=1.0,
                       help="fraction of reads left random (the rest keep no frame)")
    reads.add_argument("-o", "--output", type=Path, required=True)
    run = sub.add_parser("run", help="run a command and report its process tree's peak RSS")
    run.add_argument("--interval", type=float, default=0.1)
    run.add_argument("--json", type=Path, help="also append the result line to this file")
    run.add_argument("cmd", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.what == "reads":
        write_reads(args.output, args.count, args.length, args.seed, args.framed)
        return 0
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    result = {"cmd": " ".join(cmd), **run_measured(cmd, args.interval)}
    line = json.dumps(result)
    sys.stdout.write(line + "\n")
    if args.json:
        with open(args.json, "a") as fh:
            fh.write(line + "\n")
    return int(result["rc"])


if __name__ == "__main__":
    sys.exit(main())
