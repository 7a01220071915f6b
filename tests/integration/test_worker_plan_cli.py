"""`predict --workers N`: no more workers than shards, and a warning when N exceeds the cores."""

from __future__ import annotations

import os

import pytest

from tests.conftest import run_cli


@pytest.mark.slow
def test_more_workers_than_shards_and_cores(tmp_path):
    cores = len(os.sched_getaffinity(0))
    workers = cores + 1
    fasta = tmp_path / "in.fa"
    fasta.write_text(">a\n" + "ACCAACACCA" * 60 + "\n")  # one shard
    result = run_cli("predict", str(fasta), "-o", str(tmp_path / "out"), "--models", "demo", "--no-dashboard",
                     "--workers", str(workers))
    err = result.stderr.decode()
    assert result.returncode == 0, err
    assert f"--workers {workers} is more than the {cores} CPU core(s) available" in err
    assert f"embed: 1 shard(s) to embed: starting 1 of the {workers} planned workers" in err
    assert "[embed 1/2] finished:" in err
