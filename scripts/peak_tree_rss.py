"""Run a command and report the peak memory of its whole process tree (the command and every
process it starts, e.g. ``predict``'s workers), sampled every 0.05 s.

Usage: ``python scripts/peak_tree_rss.py -- virnucpro predict ...``

Prints one JSON line: the command's exit code, wall seconds, the peak of the summed RSS of the
tree, the peak of its summed PSS (proportional set size: a page shared by N processes counts
1/N in each, so shared read-only weights are not counted twice) and the most processes seen.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import psutil


def _tree(root: psutil.Process) -> list[psutil.Process]:
    try:
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def _sizes(process: psutil.Process) -> tuple[int, int]:
    try:
        full = process.memory_full_info()  # reads /proc/PID/smaps_rollup for PSS
        return full.rss, getattr(full, "pss", full.rss)
    except psutil.Error:
        return 0, 0


def main(argv: list[str]) -> int:
    command = argv[argv.index("--") + 1:] if "--" in argv else argv
    if not command:
        print(__doc__, file=sys.stderr)
        return 2
    began = time.monotonic()
    child = subprocess.Popen(command)
    root = psutil.Process(child.pid)
    peak_rss = peak_pss = most = 0
    while child.poll() is None:
        processes = _tree(root)
        sizes = [_sizes(p) for p in processes]
        peak_rss = max(peak_rss, sum(r for r, _ in sizes))
        peak_pss = max(peak_pss, sum(p for _, p in sizes))
        most = max(most, len(processes))
        time.sleep(0.05)
    print(json.dumps({"exit_code": child.returncode, "wall_seconds": round(time.monotonic() - began, 2),
                      "peak_tree_rss_mib": round(peak_rss / 2**20, 1),
                      "peak_tree_pss_mib": round(peak_pss / 2**20, 1), "most_processes": most}))
    return child.returncode


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
