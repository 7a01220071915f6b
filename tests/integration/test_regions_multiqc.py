"""Viral regions on a finished run are free like re-thresholding (no shard recomputed, only the
region files change), and the real MultiQC finds the VirNucPro section in two finished runs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.helpers.shared_run import SHARD_SIZE, shared_kept_run
from tests.integration.test_predict_fixture import fixture_args

pytestmark = pytest.mark.slow

REGION_FILES = ("viral_regions.tsv", "viral_regions.bed", "viral_regions.gff3")
OTHER_TABLES = ("prediction_results.txt", "prediction_results_highestscore.csv", "contig_summary.tsv",
                "chunk_scores.tsv", "viral_contigs.fa")


@pytest.fixture(scope="module")
def rerun(tmp_path_factory) -> tuple[Path, Path, dict]:
    """The shared run, and a copy of it re-run with other region settings."""
    original = shared_kept_run(tmp_path_factory)
    copy = tmp_path_factory.mktemp("regions") / "rerun"
    shutil.copytree(original, copy)
    result = run_cli(*fixture_args(copy, "--keep-features", "--shard-size", SHARD_SIZE,
                                   "--region-gap", "0", "--region-min-chunks", "1"))
    assert result.returncode == 0, result.stderr.decode()
    return original, copy, json.loads((copy / "run_summary.json").read_text())


def test_other_region_settings_recompute_only_the_region_files(rerun) -> None:
    original, copy, summary = rerun
    assert {name: summary["stages"][name]["computed_shards"] for name in ("dnabert", "esm", "score")} == {
        "dnabert": 0, "esm": 0, "score": 0}
    for name in OTHER_TABLES:
        assert (copy / name).read_bytes() == (original / name).read_bytes(), name
    before = json.loads((original / "run_summary.json").read_text())
    assert (before["calls"]["region_gap"], before["calls"]["region_min_chunks"]) == (1, 2)
    assert (summary["calls"]["region_gap"], summary["calls"]["region_min_chunks"]) == (0, 1)
    rows = {run: (run / "viral_regions.tsv").read_text().splitlines()[1:] for run in (original, copy)}
    assert summary["counts"]["viral_regions"] == len(rows[copy]) > len(rows[original]) > 0
    assert summary["outputs"]["viral_regions"] == list(REGION_FILES)
    # gap 0 and one chunk: every virus chunk of chunk_scores.tsv lies in exactly one region
    chunks = [line.split("\t") for line in (copy / "chunk_scores.tsv").read_text().splitlines()[1:]]
    virus = [(c[0], int(c[2]), int(c[3])) for c in chunks if c[6] != "NA" and float(c[6]) >= 0.5]
    regions = [(r.split("\t")[0], int(r.split("\t")[2]), int(r.split("\t")[3])) for r in rows[copy]]
    for seq, start, end in virus:
        assert sum(1 for s, a, b in regions if s == seq and a <= start and end <= b) == 1
    assert (copy / "virnucpro_mqc.json").is_file() and (copy / "virnucpro_generalstats_mqc.json").is_file()


def test_multiqc_finds_the_virnucpro_section_in_two_runs(rerun, tmp_path) -> None:
    pytest.importorskip("multiqc")
    original, copy, _ = rerun
    assert original.name != copy.name  # the sample names
    report = tmp_path / "report"
    done = subprocess.run([sys.executable, "-m", "multiqc", "--no-ansi", "-o", str(report), str(original), str(copy)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    data = json.loads((report / "multiqc_data" / "multiqc_data.json").read_text())
    calls = data["report_plot_data"]["virnucpro_calls"]
    assert "VirNucPro" in json.dumps(calls)
    bars = (report / "multiqc_data" / "multiqc_virnucpro_calls.txt").read_text().splitlines()
    assert bars[0].split("\t") == ["Sample", "virus", "not_virus", "no_call"]
    by_sample = {line.split("\t")[0]: [int(v) for v in line.split("\t")[1:]] for line in bars[1:]}
    for run in (original, copy):
        calls_of_run = json.loads((run / "run_summary.json").read_text())["calls"]
        assert by_sample[run.name] == [calls_of_run["virus"], calls_of_run["not_virus"], calls_of_run["no_call"]]
    general = (report / "multiqc_data" / "multiqc_general_stats.txt").read_text().splitlines()
    header = general[0].split("\t")
    regions_column = next(i for i, name in enumerate(header) if name.endswith("viral_regions"))
    rows = {line.split("\t")[0]: line.split("\t") for line in general[1:]}
    assert set(rows) == {original.name, copy.name}
    assert int(float(rows[copy.name][regions_column])) == len((copy / "viral_regions.tsv").read_text().splitlines()) - 1
