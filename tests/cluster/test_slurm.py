"""A real SLURM: `virnucpro slurm submit` and Snakemake's SLURM executor against a private cluster.

The cluster (munged, MariaDB, slurmdbd, slurmctld, slurmd on localhost) is started by
the session fixture ``private_slurm`` and stopped by pid at the end; the tests skip
where it cannot run (not root, packages missing).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

from tests.cluster.conftest import MODEL_ARGS, THREADS_ENV, results_of, snakemake_on_slurm
from tests.conftest import REPO_ROOT, run_cli

# End-to-end runs in subprocesses: part of `make test`, not of `make test-fast`.
pytestmark = pytest.mark.slow

JOB_ARGS = ("--cpus-per-part", "1", "--mem", "1G", "--time", "10:00")


def submit(cluster, fasta: Path, out: Path, n: int):
    env = cluster.env | THREADS_ENV | {"PYTHONPATH": str(REPO_ROOT)}
    result = run_cli("slurm", "submit", str(fasta), "-o", str(out), "-n", str(n), *JOB_ARGS, *MODEL_ARGS, env=env)
    assert result.returncode == 0, result.stderr.decode()
    ids = json.loads((out / "slurm" / "submitted.json").read_text())
    assert f"merge job {ids['merge']}" in result.stdout.decode()
    return ids


def wait_and_check(cluster, ids: dict[str, str], out: Path) -> dict[str, str]:
    assert cluster.wait_idle(300), f"jobs still queued: {cluster.queue()}"
    states = cluster.sacct_states(list(ids.values()))
    logs = "\n".join(p.read_text(errors="replace")[-800:] for p in sorted((out / "slurm" / "logs").glob("*.out")))
    assert states and all(state == "COMPLETED" for state in states.values()), f"{states}\n{logs}"
    return states


def test_slurm_submit_runs_split_array_merge_and_resumes(private_slurm, tmp_path, small_inputs, single_runs):
    out = tmp_path / "out"
    ids = submit(private_slurm, small_inputs["many"], out, 3)
    states = wait_and_check(private_slurm, ids, out)
    assert {f"{ids['predict']}_{k}" for k in (1, 2, 3)} <= set(states)  # one array task per part
    assert results_of(out) == results_of(single_runs["many"])
    merged = json.loads((out / "run_summary.json").read_text())
    assert merged["merged_from"] == 3 and merged["counts"]["sequences"] == 24

    # Resubmit after losing one part's run: the split writes nothing, the other parts are
    # reused (nothing recomputed), the lost part is computed again, the merge is the same.
    shutil.rmtree(out / "runs" / "part-0002")
    before = {p.name: p.stat().st_mtime_ns for p in (out / "parts").iterdir()}
    ids2 = submit(private_slurm, small_inputs["many"], out, 3)
    wait_and_check(private_slurm, ids2, out)
    assert {p.name: p.stat().st_mtime_ns for p in (out / "parts").iterdir()} == before
    assert "nothing to do" in (out / "slurm" / "logs" / f"split-{ids2['split']}.out").read_text()
    for part, recomputed in (("part-0001", False), ("part-0002", True), ("part-0003", False)):
        score = json.loads((out / "runs" / part / "run_summary.json").read_text())["stages"]["score"]
        assert (score["computed_shards"] > 0) == recomputed, (part, score)
    assert results_of(out) == results_of(single_runs["many"])


def test_slurm_dependency_stops_the_merge_when_a_part_fails(private_slurm, tmp_path, small_inputs):
    out = tmp_path / "out"
    env = private_slurm.env | THREADS_ENV | {"PYTHONPATH": str(REPO_ROOT)}
    bad_model = tmp_path / "not-a-model.pth"
    bad_model.write_bytes(b"not a checkpoint")
    args = [a if a != str(Path(MODEL_ARGS[MODEL_ARGS.index("--model-path") + 1])) else str(bad_model)
            for a in MODEL_ARGS]
    result = run_cli("slurm", "submit", str(small_inputs["few"]), "-o", str(out), "-n", "2", *JOB_ARGS, *args, env=env)
    assert result.returncode == 0, result.stderr.decode()
    ids = json.loads((out / "slurm" / "submitted.json").read_text())
    assert private_slurm.wait_idle(300)
    states = private_slurm.sacct_states(list(ids.values()))
    assert states[ids["split"]] == "COMPLETED"
    assert all(s == "FAILED" for j, s in states.items() if j.startswith(f"{ids['predict']}_")), states
    assert states[ids["merge"]].startswith("CANCELLED"), states  # --kill-on-invalid-dep
    assert not (out / "prediction_results.txt").exists()


@pytest.mark.skipif(importlib.util.find_spec("snakemake") is None
                    or importlib.util.find_spec("snakemake_executor_plugin_slurm") is None,
                    reason="snakemake and its SLURM executor plugin are not installed (pip install 'virnucpro[workflow]')")
def test_snakemake_slurm_executor(private_slurm, tmp_path, small_inputs, single_runs):
    wf, out = tmp_path / "wf", tmp_path / "out"
    env = private_slurm.env | THREADS_ENV | {"PYTHONPATH": str(REPO_ROOT)}
    result = run_cli("workflow", "snakemake", "-o", str(wf), "--input", str(small_inputs["many"]), "--parts", "2",
                     "--output", str(out), "--cpus-per-part", "1", "--mem-mb", "1000", "--runtime", "10",
                     *MODEL_ARGS, env=env)
    assert result.returncode == 0, result.stderr.decode()
    run = snakemake_on_slurm(wf, tmp_path, env, jobs=2)
    assert run.returncode == 0, run.stderr[-4000:]
    assert results_of(out) == results_of(single_runs["many"])
    assert "sacct" in run.stderr or "slurm" in run.stderr.lower()
