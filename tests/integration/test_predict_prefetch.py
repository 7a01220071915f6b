"""Pipelined workers (``prefetch``) change when shards are read and written, never what is written:
a spawned-worker run with prefetch 1 and one with prefetch 0 give byte-identical tables and feature files.

A feature file is compared as its header (parsed: safetensors writes the metadata from a hash map, in
an order that changes from one process to the next) and its tensor bytes, which must be identical.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from tests.conftest import run_cli
from virnucpro.pipeline.workqueue.manager import PREFETCH_ENV

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "example_contigs.fa"


def _content(path: Path) -> object:
    data = path.read_bytes()
    if path.suffix != ".safetensors":
        return data
    (size,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + size]), data[8 + size:]


def _outputs(out: Path) -> dict[str, object]:
    """Every table and feature file of a run, by path relative to the output directory."""
    files = [p for p in out.glob("*") if p.is_file() and p.suffix in (".txt", ".tsv", ".csv")]
    files += sorted((out / "work" / "features").glob("*.safetensors"))
    return {str(p.relative_to(out)): _content(p) for p in sorted(files)}


@pytest.mark.slow
def test_prefetch_one_and_zero_write_identical_files(tmp_path: Path) -> None:
    text = EXAMPLE.read_text()
    fasta = tmp_path / "in.fa"
    # Repeats of the first records land in later shards: the cross-shard reuse plans are exercised too.
    blocks = [">" + b for b in text.split(">")[1:]]
    fasta.write_text("".join(blocks) + "".join(b.replace(">", ">again_", 1) for b in blocks[:2]))
    runs = {}
    for prefetch in ("1", "0"):
        out = tmp_path / f"prefetch{prefetch}"
        result = run_cli("predict", str(fasta), "-o", str(out), "--models", "demo", "--no-dashboard",
                         "--workers", "1", "--shard-size", "4", "--keep-features", env={PREFETCH_ENV: prefetch})
        assert result.returncode == 0, result.stderr.decode()
        runs[prefetch] = _outputs(out)
    assert len([k for k in runs["1"] if k.endswith(".safetensors")]) >= 6  # several shards, both models
    assert runs["1"].keys() == runs["0"].keys()
    for name in runs["1"]:
        assert runs["1"][name] == runs["0"][name], f"{name} differs between prefetch 1 and 0"
