"""The MultiQC custom-content files of a run, as MultiQC's documented format asks (no MultiQC needed)."""

from __future__ import annotations

import json
from pathlib import Path

from virnucpro.pipeline.outputs import RunPaths
from virnucpro.pipeline.report.multiqc import remove_multiqc, write_multiqc

SUMMARY = {
    "counts": {"sequences": 10, "sequences_scored": 8, "virus_chunks": 5, "viral_regions": 3},
    "calls": {"virus": 2, "not_virus": 6, "no_call": 2, "min_score": 0.7},
}


def test_bar_plot_section_and_general_stats_row(tmp_path: Path) -> None:
    paths = RunPaths(tmp_path / "sample-A")
    paths.root.mkdir()
    write_multiqc(paths, SUMMARY)
    assert paths.multiqc.name.endswith("_mqc.json") and paths.multiqc_general_stats.name.endswith("_mqc.json")
    section = json.loads(paths.multiqc.read_text())
    assert (section["id"], section["section_name"], section["plot_type"]) == ("virnucpro", "VirNucPro", "bargraph")
    assert section["data"] == {"sample-A": {"virus": 2, "not_virus": 6, "no_call": 2}}
    assert set(section["categories"]) == {"virus", "not_virus", "no_call"}
    # runs of one report may differ in --min-score: the title names none, each row has its own
    assert "min-score" not in section["pconfig"]["title"] and "DEMO" not in section["description"]
    stats = json.loads(paths.multiqc_general_stats.read_text())
    assert stats["plot_type"] == "generalstats"
    row = stats["data"]["sample-A"]
    # % viral is of all sequences, the bar chart's total (2 of 10), not of the scored ones
    assert row == {"sequences": 10, "sequences_scored": 8, "sequences_virus": 2, "percent_virus": 20.0,
                   "virus_chunks": 5, "viral_regions": 3, "min_score": 0.7}
    assert set(row) <= set(stats["headers"])
    remove_multiqc(paths)
    assert not paths.multiqc.exists() and not paths.multiqc_general_stats.exists()


def test_unknown_values_are_left_out(tmp_path: Path) -> None:
    paths = RunPaths(tmp_path / "r")
    paths.root.mkdir()
    write_multiqc(paths, {"counts": {"sequences": 0, "sequences_scored": 0, "virus_chunks": None},
                          "calls": {"virus": 0, "not_virus": 0, "no_call": 0}})
    row = json.loads(paths.multiqc_general_stats.read_text())["data"]["r"]
    assert row == {"sequences": 0, "sequences_scored": 0, "sequences_virus": 0}


def test_demo_runs_say_so_in_the_section_and_their_row(tmp_path: Path) -> None:
    paths = RunPaths(tmp_path / "demo-run")
    paths.root.mkdir()
    write_multiqc(paths, {**SUMMARY, "notice": "demo models: scores are meaningless", "models": {"esm": "demo"}})
    section = json.loads(paths.multiqc.read_text())
    assert section["description"].startswith("<strong>DEMO MODELS: scores are meaningless</strong>")
    assert json.loads(paths.multiqc_general_stats.read_text())["data"]["demo-run"]["models"] == "demo"
