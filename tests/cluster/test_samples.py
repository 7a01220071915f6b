"""Many samples on a cluster: Snakemake's local executor, a real SLURM, the by-hand recipe
(split / predict per part / merge --samples), and the refusals before any work.

Every run uses the tiny fixture models with ``--batch-tokens 1`` on one thread, so a merged
sample's tables equal a many-sample ``predict``'s byte for byte (see DECISIONS "Cluster runs
(issue 12)"); the SPEC section 9 comparison is checked as well.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cluster.conftest import MODEL_ARGS, THREADS_ENV, predict, results_of, snakemake_on_slurm
from tests.conftest import REPO_ROOT, one_error_line, run_cli
from tests.helpers.published import assert_predictions_match

# End-to-end runs in subprocesses: part of `make test`, not of `make test-fast`.
pytestmark = pytest.mark.slow

needs_snakemake = pytest.mark.skipif(importlib.util.find_spec("snakemake") is None,
                                     reason="snakemake is not installed (pip install 'virnucpro[workflow]')")
SUMMARY_HEADER = ["sample", "sequences", "scored", "virus", "regions", "frames", "seconds", "status"]


def _sample_inputs(root: Path) -> dict[str, Path]:
    """Three small samples cut from the fixture input (gut1: 6 records, gut2: 3, soil: 5)."""
    root.mkdir(parents=True, exist_ok=True)
    text = (REPO_ROOT / "tests/data/tiny_reference/contigs.fa").read_text()
    blocks = [">" + b for b in text.split(">")[1:]]
    cuts = {"gut1": blocks[0:6], "gut2": blocks[6:9], "soil": blocks[12:17]}
    paths = {}
    for name, chosen in cuts.items():
        paths[name] = root / f"{name}.fa"
        paths[name].write_text("".join(chosen))
    return paths


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> dict[str, Path]:
    return _sample_inputs(tmp_path_factory.mktemp("samples"))


@pytest.fixture(scope="module")
def many_predict(tmp_path_factory, samples) -> Path:
    """A many-sample ``predict`` of the three samples: what every cluster run must write per sample."""
    out = tmp_path_factory.mktemp("predict") / "many"
    result = run_cli("-q", "predict", *map(str, samples.values()), "-o", str(out), "--no-dashboard", *MODEL_ARGS,
                     env=THREADS_ENV)
    assert result.returncode == 0, result.stderr.decode()
    return out


def summary_rows(root: Path) -> list[list[str]]:
    rows = [line.split("\t") for line in (root / "samples_summary.tsv").read_text().splitlines()]
    assert rows[0] == SUMMARY_HEADER
    return rows[1:]


def assert_same_samples(cluster: Path, many: Path, names) -> None:
    """Per sample: the tables of ``many`` (a many-sample predict), and the same summary rows but seconds."""
    for name in names:
        assert results_of(cluster / name) == results_of(many / name), name
        assert_predictions_match(cluster / name / "prediction_results.txt", many / name / "prediction_results.txt")
        mqc = json.loads((cluster / name / "virnucpro_generalstats_mqc.json").read_text())
        assert list(mqc["data"]) == [name]  # one MultiQC General Statistics row per sample
    ours = {row[0]: row[:6] + row[7:] for row in summary_rows(cluster)}
    theirs = {row[0]: row[:6] + row[7:] for row in summary_rows(many) if row[0] in names}
    assert {name: ours[name] for name in names} == theirs
    summary = json.loads((cluster / "run_summary.json").read_text())
    assert [s["sample"] for s in summary["samples"]] == [row[0] for row in summary_rows(cluster)]


def snakemake(wf: Path, cwd: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **THREADS_ENV, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run([sys.executable, "-m", "snakemake", "-s", str(wf / "Snakefile"), "--cores", "2", *extra],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@needs_snakemake
def test_snakemake_many_samples_equal_a_many_sample_predict(tmp_path, samples, many_predict):
    wf, out = tmp_path / "wf", tmp_path / "out"
    result = run_cli("workflow", "snakemake", "-o", str(wf), "--input", str(samples["gut1"]), "--input",
                     str(samples["gut2"]), "--parts", "2", "--output", str(out), "--cpus-per-part", "1", *MODEL_ARGS)
    assert result.returncode == 0, result.stderr.decode()
    assert (wf / "samples.tsv").read_text().splitlines()[1:] == [f"gut1\t{samples['gut1']}",
                                                                  f"gut2\t{samples['gut2']}"]
    run = snakemake(wf, tmp_path)
    assert run.returncode == 0, run.stderr[-4000:]
    for name in ("gut1", "gut2"):  # each sample: a one-input cluster run's layout in OUT/<sample>/
        assert {"parts", "runs", "logs", "run_summary.json"} <= {p.name for p in (out / name).iterdir()}
        assert json.loads((out / name / "run_summary.json").read_text())["merged_from"] == 2
    assert_same_samples(out, many_predict, ["gut1", "gut2"])
    assert json.loads((out / "run_summary.json").read_text())["status"] == "ok"

    # plot and features take the DIR as a many-sample run.
    if importlib.util.find_spec("matplotlib") is not None:
        plotted = run_cli("plot", str(out), "-o", str(tmp_path / "plots" / "{sample}.png"))
        assert plotted.returncode == 0, plotted.stderr.decode()
        assert plotted.stdout.decode().split() == [str(tmp_path / "plots" / f"{n}.png") for n in ("gut1", "gut2")]

    # Again: nothing to do. A sample added to the sheet is the only one computed.
    again = snakemake(wf, tmp_path)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
    before = {p: p.stat().st_mtime_ns for p in out.glob("gut*/runs/part-*/run_summary.json")}
    with open(wf / "samples.tsv", "a") as sheet:
        sheet.write(f"soil\t{samples['soil']}\n")
    added = snakemake(wf, tmp_path)
    assert added.returncode == 0, added.stderr[-4000:]
    assert {p: p.stat().st_mtime_ns for p in out.glob("gut*/runs/part-*/run_summary.json")} == before
    assert_same_samples(out, many_predict, ["gut1", "gut2", "soil"])


@needs_snakemake
def test_snakemake_keep_going_then_merge_samples_reports_a_failed_sample(tmp_path, samples, many_predict):
    """The documented way with Snakemake: --keep-going finishes the other samples, merge --samples
    then writes the tables with the failed sample reported."""
    bad = tmp_path / "broken.fa"
    bad.write_text(">x\nACGT@@\n")
    sheet = tmp_path / "sheet.tsv"
    sheet.write_text(f"gut2\t{samples['gut2']}\nbroken\t{bad}\n")
    wf, out = tmp_path / "wf", tmp_path / "out"
    result = run_cli("workflow", "snakemake", "-o", str(wf), "--samples", str(sheet), "--parts", "1",
                     "--output", str(out), "--cpus-per-part", "1", *MODEL_ARGS)
    assert result.returncode == 0, result.stderr.decode()
    run = snakemake(wf, tmp_path, "--keep-going")
    assert run.returncode != 0 and "'@'" in (out / "broken" / "logs" / "split.log").read_text()
    assert results_of(out / "gut2") == results_of(many_predict / "gut2")
    assert not (out / "samples_summary.tsv").exists()
    merged = run_cli("merge", "--samples", str(wf / "samples.tsv"), "-o", str(out))
    assert merged.returncode == 7 and "1 of 2 samples failed (broken)" in one_error_line(merged.stderr)
    assert [row[-1] for row in summary_rows(out)] == ["ok", "failed"]
    assert "was not split" in (out / "broken" / "FAILED.txt").read_text()


@pytest.mark.skipif(importlib.util.find_spec("snakemake") is None
                    or importlib.util.find_spec("snakemake_executor_plugin_slurm") is None,
                    reason="snakemake and its SLURM executor plugin are not installed (pip install 'virnucpro[workflow]')")
def test_snakemake_slurm_executor_many_samples(private_slurm, tmp_path, samples, many_predict):
    wf, out = tmp_path / "wf", tmp_path / "out"
    env = private_slurm.env | THREADS_ENV | {"PYTHONPATH": str(REPO_ROOT)}
    result = run_cli("workflow", "snakemake", "-o", str(wf), "--input", str(samples["gut1"]), "--input",
                     str(samples["soil"]), "--parts", "2", "--output", str(out), "--cpus-per-part", "1",
                     "--mem-mb", "1000", "--runtime", "10", *MODEL_ARGS, env=env)
    assert result.returncode == 0, result.stderr.decode()
    run = snakemake_on_slurm(wf, tmp_path, env, jobs=4)
    assert run.returncode == 0, run.stderr[-4000:]
    assert_same_samples(out, many_predict, ["gut1", "soil"])


def test_by_hand_split_predict_merge_samples_and_a_failed_sample(tmp_path, samples, many_predict):
    """The documented recipe: per sample split -n N -o DIR/<s>/parts, predict each part into
    DIR/<s>/runs/part-k, then merge --samples FILE -o DIR."""
    out = tmp_path / "many"
    sheet = tmp_path / "samples.tsv"
    sheet.write_text(f"gut2\t{samples['gut2']}\nsoil\t{samples['soil']}\n")
    for name in ("gut2", "soil"):
        done = run_cli("split", str(samples[name]), "-n", "2", "-o", str(out / name / "parts"))
        assert done.returncode == 0, done.stderr.decode()
    for part in ("part-0001", "part-0002"):
        predict(out / "gut2" / "parts" / f"{part}.fa.gz", out / "gut2" / "runs" / part)
    predict(out / "soil" / "parts" / "part-0001.fa.gz", out / "soil" / "runs" / "part-0001")

    # soil's second part never ran: soil is reported, gut2 is merged, exit 7.
    merged = run_cli("merge", "--samples", str(sheet), "-o", str(out))
    assert merged.returncode == 7, merged.stderr.decode()
    assert "1 of 2 samples failed (soil)" in one_error_line(merged.stderr)
    assert "part-0002" in (out / "soil" / "FAILED.txt").read_text()
    assert [row[-1] for row in summary_rows(out)] == ["ok", "failed"]
    assert results_of(out / "gut2") == results_of(many_predict / "gut2")
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["status"] == "some_failed" and summary["exit_code"] == 7 and summary["samples"][1]["exit_code"] == 2

    # plot skips the failed sample with a line saying why; --sample of it is refused.
    if importlib.util.find_spec("matplotlib") is not None:
        plotted = run_cli("plot", str(out))
        assert plotted.returncode == 0, plotted.stderr.decode()
        assert plotted.stdout.decode().split() == [str(out / "gut2" / "plots.pdf")]
        assert "sample soil skipped: failed:" in plotted.stderr.decode()
        refused = run_cli("plot", str(out), "--sample", "soil")
        assert refused.returncode == 3 and "sample soil did not finish" in one_error_line(refused.stderr)

    # The missing part is run: the next merge --samples keeps gut2 as it is and merges soil.
    gut2_merged = (out / "gut2" / "run_summary.json").stat().st_mtime_ns
    predict(out / "soil" / "parts" / "part-0002.fa.gz", out / "soil" / "runs" / "part-0002")
    again = run_cli("merge", "--samples", str(sheet), "-o", str(out))
    assert again.returncode == 0, again.stderr.decode()
    assert (out / "gut2" / "run_summary.json").stat().st_mtime_ns == gut2_merged
    assert not (out / "soil" / "FAILED.txt").exists()
    assert_same_samples(out, many_predict, ["gut2", "soil"])


def test_refusals_come_before_any_work(tmp_path, samples):
    (tmp_path / "other").mkdir()
    clash = tmp_path / "other" / "gut1.fa.gz"
    clash.write_bytes(b"")
    named_slurm = tmp_path / "sheet.tsv"
    named_slurm.write_text(f"slurm\t{samples['gut1']}\n")
    out, wf = tmp_path / "out", tmp_path / "wf"
    cases = [
        ((str(samples["gut1"]), str(clash)), 2, "two samples are named 'gut1'"),
        ((str(samples["gut1"]), str(tmp_path / "nope.fa")), 3, "nope.fa: no such file"),
        (("--samples", str(named_slurm)), 2, "'slurm' cannot be a sample name"),
    ]
    for args, code, message in cases:
        submitted = run_cli("slurm", "submit", *args, "-o", str(out), "-n", "2", "--dry-run")
        assert submitted.returncode == code and message in one_error_line(submitted.stderr), submitted.stderr
        inputs = [a if a.startswith("--") or a == str(named_slurm) else f"--input={a}" for a in args]
        written = run_cli("workflow", "snakemake", "-o", str(wf), *inputs, "--parts", "2", "--output", str(out))
        assert written.returncode == code and message in one_error_line(written.stderr), written.stderr
        assert not out.exists() and not wf.exists()
    merged = run_cli("merge", "--samples", str(named_slurm), "-o", str(out), str(tmp_path))
    assert merged.returncode == 2 and "give no RUN_DIR" in one_error_line(merged.stderr)
    # A one-input run's DIR is not reused for many samples, nor the other way round.
    (out / "run.json").parent.mkdir()
    (out / "run.json").write_text("{}")
    mixed = run_cli("slurm", "submit", str(samples["gut1"]), str(samples["gut2"]), "-o", str(out), "-n", "2",
                    "--dry-run")
    assert mixed.returncode == 2 and "holds a one-input run" in one_error_line(mixed.stderr)


def test_dry_run_writes_the_many_sample_scripts(tmp_path, samples):
    out = tmp_path / "out"
    result = run_cli("slurm", "submit", str(samples["gut1"]), str(samples["soil"]), "-o", str(out), "-n", "3",
                     "--gpus-per-part", "1", "--max-running", "2", "--dry-run", *MODEL_ARGS, env={"PATH": "/nonexistent"})
    assert result.returncode == 0, result.stderr.decode()
    slurm = out / "slurm"
    assert (slurm / "samples.tsv").read_text().splitlines()[1:] == [f"gut1\t{samples['gut1']}",
                                                                     f"soil\t{samples['soil']}"]
    assert "#SBATCH --array=1-2" in (slurm / "split-samples.sbatch").read_text().splitlines()
    predict_script = (slurm / "predict-samples.sbatch").read_text().splitlines()
    assert "#SBATCH --array=1-3%2" in predict_script and "#SBATCH --gres=gpu:1" in predict_script
    assert "merge --samples" in (slurm / "merge-samples.sbatch").read_text()
    for name in ("split-samples.sbatch", "predict-samples.sbatch", "merge-samples.sbatch", "predict-part.sh"):
        assert subprocess.run(["bash", "-n", str(slurm / name)]).returncode == 0, name
    assert "--dependency=afterany" in result.stdout.decode()
    assert not (slurm / "submitted.json").exists() and not (out / "gut1").exists()


def states_of(states: dict[str, str], job: str) -> list[str]:
    """The states of a job and its array tasks (a never-started array is one ``JOB_[1-2]`` line)."""
    return [state for key, state in sorted(states.items()) if key == job or key.startswith(f"{job}_")]


def test_slurm_many_samples_and_a_failed_sample(private_slurm, tmp_path, samples, many_predict):
    bad = tmp_path / "broken.fa"
    bad.write_text(">x\nACGT@@\n")
    out = tmp_path / "out"
    env = private_slurm.env | THREADS_ENV | {"PYTHONPATH": str(REPO_ROOT)}
    result = run_cli("slurm", "submit", str(samples["gut1"]), str(bad), str(samples["soil"]), "-o", str(out),
                     "-n", "2", "--cpus-per-part", "1", "--mem", "1G", "--time", "10:00", *MODEL_ARGS, env=env)
    assert result.returncode == 0, result.stderr.decode()
    ids = json.loads((out / "slurm" / "submitted.json").read_text())
    assert set(ids["predict"]) == {"gut1", "broken", "soil"}
    assert private_slurm.wait_idle(300), f"jobs still queued: {private_slurm.queue()}"
    jobs = [ids["split"], *ids["predict"].values(), ids["merge"]]
    states = private_slurm.sacct_states(jobs)
    logs = "\n".join(p.read_text(errors="replace")[-600:] for p in sorted((out / "slurm" / "logs").glob("*.out")))
    assert states[f"{ids['split']}_2"] == "FAILED", f"{states}\n{logs}"  # broken's split
    broken = states_of(states, ids["predict"]["broken"])
    assert broken and all(s.startswith("CANCELLED") for s in broken), states  # its parts never ran
    for name in ("gut1", "soil"):
        assert states_of(states, ids["predict"][name]) == ["COMPLETED", "COMPLETED"], states
    assert states[ids["merge"]] == "FAILED", states  # the merge job exits 7: some samples failed
    assert [row[-1] for row in summary_rows(out)] == ["ok", "failed", "ok"]
    assert "not split" in (out / "broken" / "FAILED.txt").read_text()
    assert_same_samples(out, many_predict, ["gut1", "soil"])

    # Resubmitted without the broken sample: nothing is recomputed, every sample is ok.
    shutil.rmtree(out / "broken")
    before = {p: p.stat().st_mtime_ns for p in out.glob("*/parts/part-*.fa.gz")}
    again = run_cli("slurm", "submit", str(samples["gut1"]), str(samples["soil"]), "-o", str(out), "-n", "2",
                    "--cpus-per-part", "1", "--mem", "1G", "--time", "10:00", *MODEL_ARGS, env=env)
    assert again.returncode == 0, again.stderr.decode()
    ids2 = json.loads((out / "slurm" / "submitted.json").read_text())
    assert private_slurm.wait_idle(300)
    states2 = private_slurm.sacct_states([ids2["split"], *ids2["predict"].values(), ids2["merge"]])
    assert all(s == "COMPLETED" for s in states2.values()), states2
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/parts/part-*.fa.gz")} == before
    for run_dir in out.glob("*/runs/part-*"):
        assert json.loads((run_dir / "run_summary.json").read_text())["stages"]["score"]["computed_shards"] == 0
    assert [row[0] for row in summary_rows(out)] == ["gut1", "soil"]
    assert json.loads((out / "run_summary.json").read_text())["status"] == "ok"
