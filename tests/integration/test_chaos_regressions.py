"""Defects found by ``scripts/chaos.py``, each with the run that showed it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.integration.test_predict_stop import predict_args, small_input

# End-to-end runs in subprocesses: part of `make test`, not of `make test-fast`.
pytestmark = pytest.mark.slow


def temporaries(out: Path) -> list[Path]:
    return [p for p in out.rglob("*") if ".tmp-" in p.name]


def test_a_run_that_recovered_from_a_killed_worker_leaves_no_temporary_file(tmp_path):
    """One worker, three shards: it is SIGKILLed at its 3rd rename (shard 2's complete temp file,
    then again at shard 3's), restarted each time, and the run finishes. Before, the dead
    worker's temp files stayed in work/features until the next run."""
    source = small_input(tmp_path)
    out = tmp_path / "out"
    result = run_cli(*predict_args(source, out, "--workers", "1", "--keep-features"),
                     env={"VIRNUCPRO_CRASH_BEFORE_RENAME": "worker:3"})
    assert result.returncode == 0, result.stderr.decode()
    assert "died: killed by SIGKILL" in (out / "virnucpro.log").read_text()
    assert temporaries(out) == []
    assert len(list((out / "work" / "features").glob("*.safetensors"))) == 6
