"""Fixtures of the cluster tests: small inputs, tiny-model predict runs, and a private SLURM cluster."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cluster.private_slurm import PrivateSlurm, missing_reason
from tests.conftest import REPO_ROOT, TINY_REF, run_cli

MODELS = TINY_REF / "models"
RESULT_FILES = ("prediction_results.txt", "prediction_results_highestscore.csv", "contig_summary.tsv",
                "chunk_scores.tsv", "viral_contigs.fa", "viral_regions.tsv", "viral_regions.bed", "viral_regions.gff3")

#: Options of every predict run here: the tiny fixture models on CPU in FP32, one frame per
#: model batch, so a frame's score cannot depend on its batch neighbours (see cluster/merge.py).
MODEL_ARGS = (
    "--esm-model", str(MODELS / "esm2_t36_tiny.pt"),
    "--dnabert-model", str(MODELS / "dnabert_tiny"),
    "--model-path", str(MODELS / "classifier_tiny.pth"),
    "--precision", "fp32", "--device", "cpu", "--offline", "--batch-tokens", "1",
)


#: One torch thread per run: the machines that run the tests are shared, and oversubscribed
#: OpenMP threads make a tiny-model run ten times slower. Every run here (single runs, parts,
#: cluster jobs) uses the same, so their numbers are comparable byte for byte.
THREADS_ENV = {"OMP_NUM_THREADS": "1"}


def cli_env() -> dict[str, str]:
    """Environment of a CLI subprocess that runs this checkout."""
    env = dict(os.environ) | THREADS_ENV
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("VIRNUCPRO_CACHE", str(REPO_ROOT / ".pytest_cache" / "virnucpro-cache"))
    return env


def snakemake_on_slurm(wf: Path, cwd: Path, env: dict[str, str], jobs: int) -> subprocess.CompletedProcess[str]:
    """Run the Snakefile written to ``wf`` with Snakemake's SLURM executor (on the private cluster of ``env``)."""
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(wf / "Snakefile"), "--executor", "slurm", "--jobs", str(jobs),
         "--slurm-init-seconds-before-status-checks", "1", "--latency-wait", "5", "--slurm-no-account"],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
    )


def results_of(out: Path) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in RESULT_FILES}


def predict(fasta: Path, out: Path, *extra: str) -> None:
    """One ordinary predict run of the CLI, in a subprocess."""
    result = run_cli("-q", "predict", str(fasta), "-o", str(out), "--no-dashboard", *MODEL_ARGS, *extra,
                     env=THREADS_ENV)
    assert result.returncode == 0, result.stderr.decode()


def records_of(path: Path, count: int, empty_after: int | None = None) -> bytes:
    """The first ``count`` records of the fixture input, optionally with an empty record inserted."""
    text = (TINY_REF / "contigs.fa").read_text()
    blocks = [">" + b for b in text.split(">")[1:]][:count]
    if empty_after is not None:
        blocks.insert(empty_after, ">empty_record an empty sequence\n\n")
    data = "".join(blocks).encode()
    path.write_bytes(data)
    return data


@pytest.fixture(scope="session")
def small_inputs(tmp_path_factory) -> dict[str, Path]:
    """``many``: 24 records (one empty); ``few``: 5 records (for more parts than records)."""
    root = tmp_path_factory.mktemp("inputs")
    records_of(root / "many.fa", 23, empty_after=10)
    records_of(root / "few.fa", 5)
    return {"many": root / "many.fa", "few": root / "few.fa"}


@pytest.fixture(scope="session")
def single_runs(tmp_path_factory, small_inputs) -> dict[str, Path]:
    """A single ordinary predict run of each small input: what every merge must reproduce."""
    root = tmp_path_factory.mktemp("single")
    runs = {}
    for name, fasta in small_inputs.items():
        predict(fasta, root / name)
        runs[name] = root / name
    return runs


@pytest.fixture(scope="session")
def private_slurm(tmp_path_factory):
    """A one-node SLURM cluster with accounting on localhost (skips where it cannot run)."""
    reason = missing_reason()
    if reason:
        pytest.skip(f"private SLURM cluster not available: {reason}")
    # A short path: munge and MariaDB sockets must fit in sun_path (108 bytes).
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="vnp-slurm-"))
    cluster = PrivateSlurm(root)
    try:
        cluster.start()
    except RuntimeError as exc:
        pytest.fail(f"private SLURM cluster did not start: {exc}")
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


