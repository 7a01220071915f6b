"""Benchmark: gzip input read and ``virnucpro split`` with isal and with the standard library (zlib).

Both are measured in the same run on the same synthetic contigs (gzip level 6, as
delivered), alternating, best of ``--repeat``; the ratio is zlib time / isal time.
zstd input is read too, for comparison. Usage::

    python scripts/bench_gzip.py [--mbp 60] [--repeat 3] [--parts 4]
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import tempfile
import time
from pathlib import Path


def _use(impl: str) -> None:
    if impl == "zlib":
        os.environ["VIRNUCPRO_NO_ISAL"] = "1"
    else:
        os.environ.pop("VIRNUCPRO_NO_ISAL", None)


def _read_all(path: Path) -> tuple[int, int]:
    from virnucpro.cluster.split import count_records

    return count_records(path)


def _decompress_only(path: Path) -> int:
    from virnucpro.io.fasta_open import open_input

    stream, _ = open_input(path)
    total = 0
    with stream:
        while block := stream.read(1 << 20):
            total += len(block)
    return total


def _best(fn, repeat: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        began = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - began)
    return best, result


def _best_of_both(job, repeat: int) -> dict[str, float]:
    """Best time of ``job`` with zlib and with isal, the two alternating (a load spike hits both)."""
    best = {"zlib": float("inf"), "isal": float("inf")}
    for _ in range(repeat):
        for impl in best:
            _use(impl)
            began = time.perf_counter()
            job(impl)
            best[impl] = min(best[impl], time.perf_counter() - began)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mbp", type=float, default=60.0, help="synthetic input size in megabases")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--parts", type=int, default=4)
    args = parser.parse_args()

    import zstandard

    from virnucpro.benchmark.synthetic import write_contigs
    from virnucpro.cluster.split import split_fasta

    work = Path(tempfile.mkdtemp(prefix="bench-gzip-"))
    try:
        plain = work / "contigs.fa"
        write_contigs(plain, int(args.mbp * 1e6), seed=11)
        data = plain.read_bytes()
        packed = work / "contigs.fa.gz"
        packed.write_bytes(gzip.compress(data, compresslevel=6, mtime=0))
        zst = work / "contigs.fa.zst"
        zst.write_bytes(zstandard.ZstdCompressor(level=3, write_checksum=True).compress(data))
        print(f"input: {len(data) / 1e6:.1f} MB FASTA, {packed.stat().st_size / 1e6:.1f} MB gzip -6, "
              f"{zst.stat().st_size / 1e6:.1f} MB zstd -3")
        def run_split(impl: str) -> None:
            out = work / f"parts-{impl}"
            shutil.rmtree(out, ignore_errors=True)
            split_fasta(str(packed), args.parts, out)

        def compress_only(impl: str) -> None:
            from virnucpro.io.fasta_open import gzip_module

            gzip_module().compress(data, compresslevel=1, mtime=0)

        rows = []
        for label, job in (
            ("decompress only (open_input)", lambda impl: _decompress_only(packed)),
            ("read FASTA records (FastaReader)", lambda impl: _read_all(packed)),
            ("compress only, level 1 (one call)", compress_only),
            (f"split into {args.parts} parts (read x2 + write level 1)", run_split),
        ):
            times = _best_of_both(job, args.repeat)
            rows.append((label, times["zlib"], times["isal"]))
        split_sizes = {impl: sum(p.stat().st_size for p in (work / f"parts-{impl}").glob("part-*.fa.gz"))
                       for impl in ("zlib", "isal")}
        _use("isal")
        zstd_time, _ = _best(lambda: _read_all(zst), args.repeat)

        print("| step | zlib (s) | isal (s) | zlib / isal |")
        print("|---|---:|---:|---:|")
        for label, slow, fast in rows:
            print(f"| {label} | {slow:.2f} | {fast:.2f} | {slow / fast:.2f}x |")
        print(f"| read FASTA records from zstd -3 (zstandard) | | {zstd_time:.2f} | |")
        print(f"parts' total size: zlib level 1 {split_sizes['zlib'] / 1e6:.1f} MB, "
              f"isal level 1 {split_sizes['isal'] / 1e6:.1f} MB")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
