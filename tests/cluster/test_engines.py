"""The job scripts and the Snakemake workflow as written, and Snakemake's local executor end to end."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cluster.conftest import MODEL_ARGS, THREADS_ENV, results_of
from tests.conftest import REPO_ROOT, run_cli

# End-to-end runs in subprocesses: part of `make test`, not of `make test-fast`.
pytestmark = pytest.mark.slow

SCRIPTS_DIR = REPO_ROOT / "scripts" / "slurm"
TEMPLATES = REPO_ROOT / "virnucpro" / "cluster" / "templates"
needs_snakemake = pytest.mark.skipif(importlib.util.find_spec("snakemake") is None,
                                     reason="snakemake is not installed (pip install 'virnucpro[workflow]')")


def test_lab_copies_of_the_job_scripts_match_the_package_templates():
    from virnucpro.cluster.slurm import HELPER, SCRIPTS, template_body, template_text

    for name in SCRIPTS:
        assert template_body((SCRIPTS_DIR / name).read_text()) == template_body(template_text(name)), name
    assert (SCRIPTS_DIR / HELPER).read_text() == template_text(HELPER)
    for path in [*SCRIPTS_DIR.glob("*.sbatch"), SCRIPTS_DIR / HELPER]:
        assert subprocess.run(["bash", "-n", str(path)]).returncode == 0, path


def test_dry_run_writes_scripts_and_submits_nothing(tmp_path):
    out = tmp_path / "out"
    result = run_cli("slurm", "submit", str(REPO_ROOT / "tests/data/tiny_reference/contigs.fa"), "-o", str(out),
                     "-n", "4", "--gpus-per-part", "2", "--partition", "gpu", "--mem", "48G", "--time", "2:00:00",
                     "--max-running", "2", "--dry-run", *MODEL_ARGS, "--chunk-length", "300", env={"PATH": "/nonexistent"})
    assert result.returncode == 0, result.stderr.decode()
    slurm = out / "slurm"
    predict = (slurm / "predict.sbatch").read_text()
    for line in ("#SBATCH --array=1-4%2", "#SBATCH --gres=gpu:2", "#SBATCH --partition=gpu", "#SBATCH --mem=48G",
                 "#SBATCH --time=2:00:00", "GPUS_PER_PART=2"):
        assert line in predict.splitlines(), line
    assert "--chunk-length 300" in predict and "--batch-tokens 1" in predict
    assert str(REPO_ROOT / "tests/data/tiny_reference/models/esm2_t36_tiny.pt") in predict  # paths made absolute
    assert "--dependency=afterok:$split" in result.stdout.decode()
    assert not (slurm / "submitted.json").exists()
    for name in ("split.sbatch", "predict.sbatch", "merge.sbatch", "predict-part.sh"):
        assert subprocess.run(["bash", "-n", str(slurm / name)]).returncode == 0, name


def test_submit_without_sbatch_is_one_line(tmp_path):
    result = run_cli("slurm", "submit", str(REPO_ROOT / "tests/data/tiny_reference/contigs.fa"), "-o", str(tmp_path),
                     "-n", "2", env={"PATH": str(Path(sys.executable).parent)})
    err = result.stderr.decode().strip().splitlines()
    assert result.returncode == 1 and err[-1].startswith("virnucpro: error: sbatch not found"), err


def test_gpus_of_the_allocation_reach_predict(tmp_path):
    """predict-part.sh turns the GPUs SLURM made visible into predict's --gpus ordinals."""
    fake = tmp_path / "fake-virnucpro"
    fake.write_text('#!/bin/sh\necho "$@" > "$ARGS_OUT"\n')
    fake.chmod(0o755)
    part = tmp_path / "part-0001.fa.gz"
    import gzip

    part.write_bytes(gzip.compress(b">a\nACGT\n"))
    for visible, expected in (("3,5", "--gpus 0,1"), ("", "--gpus 0,1")):
        env = {"VIRNUCPRO": str(fake), "ARGS_OUT": str(tmp_path / "args"), "PATH": "/usr/bin:/bin",
               "CUDA_VISIBLE_DEVICES": visible, "SLURM_CPUS_PER_TASK": "4"}
        if not visible:
            env.pop("CUDA_VISIBLE_DEVICES")
            env["SLURM_JOB_GPUS"] = "6,7"
        done = subprocess.run(["bash", str(TEMPLATES / "predict-part.sh"), str(part), str(tmp_path / "run"), "2",
                               "--offline"], env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        args = (tmp_path / "args").read_text().split()
        assert " ".join(args[-3:]) == "--offline " + expected and "--no-dashboard" in args
    empty = tmp_path / "part-0002.fa.gz"
    empty.write_bytes(gzip.compress(b""))
    done = subprocess.run(["bash", str(TEMPLATES / "predict-part.sh"), str(empty), str(tmp_path / "r2"), "0"],
                          env={"VIRNUCPRO": "/bin/false", "PATH": "/usr/bin:/bin"}, capture_output=True, text=True)
    assert done.returncode == 0 and "nothing to predict" in done.stdout


def test_workflow_config_holds_the_values(tmp_path):
    result = run_cli("workflow", "snakemake", "-o", str(tmp_path / "wf"), "--input",
                     str(REPO_ROOT / "tests/data/tiny_reference/contigs.fa"), "--parts", "5", "--output",
                     str(tmp_path / "out"), "--gpus-per-part", "1", "--mem-mb", "64000", "--runtime", "90",
                     "--partition", "gpu", "--models", "demo")
    assert result.returncode == 0, result.stderr.decode()
    text = (tmp_path / "wf" / "config.yaml").read_text()
    yaml = pytest.importorskip("yaml")
    config = yaml.safe_load(text)
    assert config["parts"] == 5 and config["predict_args"] == ["--models", "demo"]
    assert config["resources"]["predict"] == {"threads": 4, "mem_mb": 64000, "runtime": 90, "gpu": 1}
    assert config["slurm_partition"] == "gpu" and config["output"] == str((tmp_path / "out").resolve())
    assert (tmp_path / "wf" / "Snakefile").read_text() == (TEMPLATES / "Snakefile").read_text()


@needs_snakemake
def test_snakemake_local_executor_equals_single_run(tmp_path, small_inputs, single_runs):
    wf, out = tmp_path / "wf", tmp_path / "out"
    result = run_cli("workflow", "snakemake", "-o", str(wf), "--input", str(small_inputs["few"]), "--parts", "7",
                     "--output", str(out), "--cpus-per-part", "1", *MODEL_ARGS)
    assert result.returncode == 0, result.stderr.decode()
    env = {**os.environ, **THREADS_ENV, "PYTHONPATH": str(REPO_ROOT)}
    run = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(wf / "Snakefile"), "--cores", "2"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-4000:]
    assert results_of(out) == results_of(single_runs["few"])
    # Run again: nothing to do.
    again = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(wf / "Snakefile"), "--cores", "2"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
