"""--shard-size auto end to end: sized to the input and the workers, kept when a run is resumed elsewhere."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from tests.conftest import run_cli


def _summary(out: Path) -> dict:
    return json.loads((out / "run_summary.json").read_text())


@pytest.mark.slow
def test_auto_shard_size_follows_the_workers_and_survives_a_resume_on_other_workers(tmp_path: Path) -> None:
    # 8000 chunks of random DNA: almost no frame is free of stop codons, so little is embedded.
    rng = random.Random(7)
    fasta = tmp_path / "random.fa"
    fasta.write_text("".join(f">r{i}\n{''.join(rng.choices('ACGT', k=50_000))}\n" for i in range(80)))
    base = ("--models", "demo", "--no-dashboard")

    one = tmp_path / "one"
    first = run_cli("predict", str(fasta), "-o", str(one), *base)
    assert first.returncode == 0, first.stderr.decode()
    assert _summary(one)["shard_size"] == 2_000  # 8000 chunks / (1 worker * 4 shards)

    resumed = run_cli("predict", str(fasta), "-o", str(one), "--workers", "2", *base)
    assert resumed.returncode == 0, resumed.stderr.decode()
    summary = _summary(one)
    assert summary["shard_size"] == 2_000  # the size the run started with: every shard reused
    assert summary["stages"]["score"]["computed_shards"] == 0

    two = tmp_path / "two"
    fresh = run_cli("predict", str(fasta), "-o", str(two), "--workers", "2", *base)
    assert fresh.returncode == 0, fresh.stderr.decode()
    assert _summary(two)["shard_size"] == 1_000
    for name in ("contig_summary.tsv", "chunk_scores.tsv"):
        assert (one / name).read_bytes() == (two / name).read_bytes()


@pytest.mark.slow
def test_a_bad_shard_size_is_a_usage_error(tmp_path: Path) -> None:
    fasta = tmp_path / "in.fa"
    fasta.write_text(">a\nACGT\n")
    result = run_cli("predict", str(fasta), "-o", str(tmp_path / "out"), "--shard-size", "0")
    assert result.returncode == 2
    assert "'0' is not a positive number of frames or 'auto'" in result.stderr.decode()
