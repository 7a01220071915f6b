"""`plot` and `features export` on a many-sample DIR: every finished sample, --sample NAME for one,
a failed sample skipped with a line saying why."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO_ROOT, one_error_line, run_cli

# End-to-end runs in subprocesses: part of `make test`, not of `make test-fast`.
pytestmark = pytest.mark.slow

DEMO = ("--models", "demo", "--no-dashboard", "--device", "cpu", "--precision", "fp32")
needs_matplotlib = pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None,
                                      reason="matplotlib is not installed (pip install 'virnucpro[plot]')")


@pytest.fixture(scope="module")
def many(tmp_path_factory) -> Path:
    """``predict gut1 broken gut2 -o many --keep-features`` (broken fails: exit 7)."""
    root = tmp_path_factory.mktemp("samples")
    blocks = [">" + b for b in (REPO_ROOT / "examples" / "example_contigs.fa").read_text().split(">")[1:]]
    (root / "gut1.fa").write_text("".join(blocks[:4]))
    (root / "broken.fa").write_text(">x\nACGT@@\n")
    (root / "gut2.fa").write_text("".join(blocks[4:8]))
    out = root / "many"
    result = run_cli("predict", *(str(root / f"{n}.fa") for n in ("gut1", "broken", "gut2")), "-o", str(out),
                     "--keep-features", *DEMO)
    assert result.returncode == 7, result.stderr.decode()
    return out


def test_features_export_every_finished_sample(many, tmp_path):
    result = run_cli("features", "export", str(many))
    assert result.returncode == 0, result.stderr.decode()
    expected = [str(many / s / "features" / f"{m}_{k}") for s in ("gut1", "gut2") for m in ("dnabert", "esm")
                for k in ("embeddings.npy", "ids.txt")]
    assert result.stdout.decode().split() == expected
    assert "features export: sample broken skipped: failed:" in result.stderr.decode()
    for sample in ("gut1", "gut2"):  # what the export of the sample's folder alone writes
        alone = run_cli("features", "export", str(many / sample), "-o", str(tmp_path / sample))
        assert alone.returncode == 0, alone.stderr.decode()
        for model in ("dnabert", "esm"):
            ours = np.load(many / sample / "features" / f"{model}_embeddings.npy")
            assert ours.shape[0] > 0 and np.array_equal(ours, np.load(tmp_path / sample / f"{model}_embeddings.npy"))
            assert ((many / sample / "features" / f"{model}_ids.txt").read_text()
                    == (tmp_path / sample / f"{model}_ids.txt").read_text())
    # -o OUT: OUT/<sample>/ each; with --sample, OUT itself.
    into = run_cli("features", "export", str(many), "-o", str(tmp_path / "all"), "--format", "tsv", "--model", "esm")
    assert into.returncode == 0 and into.stdout.decode().split() == [
        str(tmp_path / "all" / s / "esm_embeddings.tsv") for s in ("gut1", "gut2")]
    one = run_cli("features", "export", str(many), "--sample", "gut2", "-o", str(tmp_path / "one"), "--model", "esm")
    assert one.returncode == 0 and one.stdout.decode().split() == [
        str(tmp_path / "one" / "esm_embeddings.npy"), str(tmp_path / "one" / "esm_ids.txt")]


def test_features_export_reports_a_sample_that_fails_and_exports_the_others(many, tmp_path):
    copy = tmp_path / "many"
    shutil.copytree(many, copy)
    shutil.rmtree(copy / "gut1" / "work" / "features")
    result = run_cli("features", "export", str(copy), "-o", str(tmp_path / "out"))
    assert result.returncode == 7, result.stderr.decode()
    assert "1 of 2 samples failed (gut1)" in one_error_line(result.stderr)
    assert "has no kept dnabert features" in result.stderr.decode()
    assert (tmp_path / "out" / "gut2" / "esm_embeddings.npy").is_file()


def test_sample_choice_and_refusals(many, tmp_path):
    cases = [
        (("features", "export", str(many), "--sample", "nope"), 2, "has no sample 'nope' (samples: gut1, broken, gut2)"),
        (("features", "export", str(many), "--sample", "broken"), 3, "sample broken did not finish (failed:"),
        (("features", "export", str(many / "gut1"), "--sample", "gut1"), 2, "is not a many-sample run"),
        (("plot", str(many), "-o", str(tmp_path / "one.pdf")), 2, "put {sample} in the name"),
        (("plot", str(many), "--ids", "x"), 2, "--ids names sequences of one sample: add --sample NAME"),
    ]
    for args, code, message in cases:
        result = run_cli(*args)
        assert result.returncode == code and message in one_error_line(result.stderr), (args, result.stderr)
    assert not (tmp_path / "one.pdf").exists()


@needs_matplotlib
def test_plot_every_finished_sample(many, tmp_path):
    result = run_cli("plot", str(many), "--top", "2")
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode().split() == [str(many / s / "plots.pdf") for s in ("gut1", "gut2")]
    assert "plot: sample broken skipped: failed:" in result.stderr.decode()
    for sample in ("gut1", "gut2"):
        assert (many / sample / "plots.pdf").read_bytes()[:5] == b"%PDF-"
    ids = [line.split("\t")[0] for line in (many / "gut2" / "contig_summary.tsv").read_text().splitlines()[1:]]
    one = run_cli("plot", str(many), "--sample", "gut2", "--ids", ids[0], "-o", str(tmp_path / "gut2.svg"))
    assert one.returncode == 0 and one.stdout.decode().split() == [str(tmp_path / "gut2.svg")], one.stderr.decode()
    assert b"<svg" in (tmp_path / "gut2.svg").read_bytes()[:400]


def test_merge_samples_takes_predict_runs_as_they_are(many, tmp_path):
    """``merge --samples`` on sample folders that hold predict runs (no parts): kept as they are, the
    tables rewritten; asked for other report-only settings, it refuses before any work (merge cannot
    re-call them)."""
    copy = tmp_path / "many"
    shutil.copytree(many, copy)
    sheet = tmp_path / "sheet.tsv"
    sheet.write_text("".join(f"{name}\t{many.parent / name}.fa\n" for name in ("gut1", "gut2")))
    before = {name: (copy / name / "contig_summary.tsv").read_bytes() for name in ("gut1", "gut2")}
    kept = run_cli("merge", "--samples", str(sheet), "-o", str(copy))
    assert kept.returncode == 0, kept.stderr.decode()
    rows = [line.split("\t") for line in (copy / "samples_summary.tsv").read_text().splitlines()[1:]]
    assert [(row[0], row[-1]) for row in rows] == [("gut1", "ok"), ("gut2", "ok")]
    assert {name: (copy / name / "contig_summary.tsv").read_bytes() for name in before} == before
    table = (copy / "samples_summary.tsv").read_bytes()
    refused = run_cli("merge", "--samples", str(sheet), "-o", str(copy), "--min-score", "0.7")
    assert refused.returncode == 2 and "merge cannot call it at other settings" in one_error_line(refused.stderr)
    assert not (copy / "gut1" / "FAILED.txt").exists() and (copy / "samples_summary.tsv").read_bytes() == table
