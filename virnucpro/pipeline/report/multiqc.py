"""MultiQC custom content of a run: ``virnucpro_mqc.json`` and ``virnucpro_generalstats_mqc.json``.

MultiQC picks up any ``*_mqc.json`` file under the directories it is given
(its "custom content" module; https://docs.seqera.io/multiqc/custom_content).
One custom-content file makes exactly one thing: a section with one plot, or
(``plot_type: generalstats``) columns of the General Statistics table. So a run
writes two files:

* ``virnucpro_mqc.json``: the "VirNucPro" section, a bar plot of the sequences
  called ``virus``, ``not_virus`` and ``no_call`` (the counts of
  ``contig_summary.tsv``; every sequence is in exactly one bar);
* ``virnucpro_generalstats_mqc.json``: one General Statistics row per run:
  sequences, scored sequences, viral sequences and their percentage of *all*
  sequences (the bar chart's total), virus chunks, viral regions, and the
  run's ``--min-score`` and models (``demo`` flags meaningless scores).

Runs compared in one report may differ in ``--min-score``: MultiQC keeps one
section configuration (the last file's), so the plot title names no threshold;
each sample's is its General Statistics ``Min score`` column. A demo run says
so in its section description and in the ``Models`` column.

MultiQC logs ``virnucpro: Found 1 samples (bar)`` for the bar plot whatever the
number of runs: that line counts the plot's datasets (one), not its samples;
the General Statistics line and the report itself show every run.

The sample name is the output directory's name (MultiQC merges the files of
several runs by section ID, keyed by sample), so runs compared in one report
need distinct directory names. Counts only: no file of a run depends on
MultiQC, and both files are rewritten with ``run_summary.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from virnucpro.pipeline.checkpoint import atomic_write_text
from virnucpro.pipeline.outputs import RunPaths

SECTION_ID = "virnucpro"
PLOT_ID = "virnucpro_calls"
GENERAL_STATS_ID = "virnucpro_general_stats"
SECTION_NAME = "VirNucPro"
DESCRIPTION = ("Sequences called virus by VirNucPro (DNABERT-S + ESM-2 + MLP): mean chunk score at least "
               "<code>--min-score</code> (each sample's is the General Statistics column <em>Min score</em>); "
               "<em>no call</em>: no chunk with a kept frame, empty or below <code>--min-length</code>.")
DEMO_DESCRIPTION = ("<strong>DEMO MODELS: scores are meaningless</strong> (sample {sample}: tiny random models "
                    "for trying the tool). ")


def sample_name(paths: RunPaths) -> str:
    """The MultiQC sample name of a run: its output directory's name."""
    return paths.root.resolve().name


def section_content(sample: str, counts: dict[str, int], demo: bool = False) -> dict[str, Any]:
    """``virnucpro_mqc.json``: the section with the bar plot of the sequence calls (``demo``: made
    by the demo models, said first in the description)."""
    return {
        "id": SECTION_ID,
        "section_name": SECTION_NAME,
        "description": (DEMO_DESCRIPTION.format(sample=sample) if demo else "") + DESCRIPTION,
        "plot_type": "bargraph",
        "pconfig": {"id": PLOT_ID, "title": "VirNucPro: sequence calls",
                    "ylab": "Sequences", "cpswitch_counts_label": "Sequences"},
        "categories": {
            "virus": {"name": "virus", "color": "#D55E00"},
            "not_virus": {"name": "not virus", "color": "#0072B2"},
            "no_call": {"name": "no call", "color": "#BBBBBB"},
        },
        "data": {sample: {key: counts[key] for key in ("virus", "not_virus", "no_call")}},
    }


def general_stats_content(sample: str, row: dict[str, float | int | str | None]) -> dict[str, Any]:
    """``virnucpro_generalstats_mqc.json``: one General Statistics row."""
    headers = {
        "sequences": {"title": "Sequences", "description": "Input sequences", "format": "{:,.0f}",
                      "scale": "Blues"},
        "sequences_scored": {"title": "Scored", "description": "Sequences with a virus_score",
                             "format": "{:,.0f}", "hidden": True},
        "sequences_virus": {"title": "Viral seqs", "description": "Sequences called virus",
                            "format": "{:,.0f}", "scale": "Oranges"},
        "percent_virus": {"title": "% viral", "description": "Sequences called virus, % of all sequences "
                          "(the bar chart's total)", "suffix": "%", "min": 0, "max": 100, "scale": "OrRd"},
        "virus_chunks": {"title": "Virus chunks", "description": "Chunks whose chunk score is at least --min-score",
                         "format": "{:,.0f}", "hidden": True},
        "viral_regions": {"title": "Viral regions", "description": "Rows of viral_regions.tsv",
                          "format": "{:,.0f}"},
        "min_score": {"title": "Min score", "description": "--min-score of the run: the threshold of its calls",
                      "format": "{:,.3g}", "min": 0, "max": 1},
        "models": {"title": "Models", "description": "'demo': tiny random models, scores are meaningless"},
    }
    return {
        "id": GENERAL_STATS_ID,
        "plot_type": "generalstats",
        "namespace": SECTION_NAME,
        "headers": headers,
        "data": {sample: {key: value for key, value in row.items() if value is not None}},
    }


def write_multiqc(paths: RunPaths, summary: dict[str, Any]) -> None:
    """Write both MultiQC files of a run from its ``run_summary.json`` content (atomically)."""
    counts, calls = summary.get("counts") or {}, summary.get("calls") or {}
    sample = sample_name(paths)
    bars = {k: calls.get(k, 0) for k in ("virus", "not_virus", "no_call")}
    total = sum(bars.values())  # every sequence has exactly one call
    demo = bool(summary.get("notice"))
    row: dict[str, float | int | str | None] = {
        "sequences": counts.get("sequences"),
        "sequences_scored": counts.get("sequences_scored") or 0,
        "sequences_virus": bars["virus"],
        "percent_virus": round(100 * bars["virus"] / total, 2) if total else None,
        "virus_chunks": counts.get("virus_chunks"),
        "viral_regions": counts.get("viral_regions"),
        "min_score": calls.get("min_score"),
        "models": "demo" if demo else "published" if summary.get("models") else None,
    }
    atomic_write_text(paths.multiqc, json.dumps(section_content(sample, bars, demo), indent=1) + "\n")
    atomic_write_text(paths.multiqc_general_stats, json.dumps(general_stats_content(sample, row), indent=1) + "\n")


def remove_multiqc(paths: RunPaths) -> None:
    """Remove both files (a failed run has no calls to show)."""
    for path in (paths.multiqc, paths.multiqc_general_stats):
        Path(path).unlink(missing_ok=True)
