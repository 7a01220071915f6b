"""The tables of a many-sample run at ``DIR``: ``samples_summary.tsv`` and ``run_summary.json``.

One row per sample, in the order the samples were given: its counts come from its own
``DIR/<sample>/run_summary.json`` (the one a one-input run writes), its ``seconds`` and
``status`` from this run (``ok``, ``failed``, ``interrupted``, ``running`` or ``pending``:
not started). Both files are rewritten as each sample ends, so an interrupted run says how
far it got.
MultiQC needs nothing more: each sample folder holds its own ``*_mqc.json`` files named
after the sample (its folder), so ``multiqc DIR`` shows one General Statistics row per sample.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from virnucpro import __version__
from virnucpro.errors import UsageError
from virnucpro.pipeline.checkpoint import atomic_write_text

SAMPLES_SUMMARY_NAME = "samples_summary.tsv"
COLUMNS = ("sample", "sequences", "scored", "virus", "regions", "frames", "seconds", "status")
#: A sample's folder holds this (the one-line error) while its last run failed; removed once it succeeds.
FAILED_NAME = "FAILED.txt"


@dataclass
class SampleOutcome:
    """What became of one sample in this run."""

    name: str
    path: str
    status: str = "pending"
    seconds: float | None = None
    error: str | None = None
    exit_code: int | None = None
    counts: dict[str, Any] | None = None  # its run_summary.json's counts, once it succeeded

    def row(self) -> list[str]:
        counts = self.counts or {}
        values = [self.name, counts.get("sequences"), counts.get("sequences_scored"), counts.get("sequences_virus"),
                  counts.get("viral_regions"), counts.get("kept_frames"),
                  None if self.seconds is None else f"{self.seconds:.3f}", self.status]
        return ["NA" if value is None else str(value) for value in values]


_RUN_CONTEXT: list[str] = []


def set_run_context(text: str | None) -> None:
    """What this run is in, shown before the stage in the live view's title and in each plain
    progress line of :mod:`.dashboard` (``samples 1/5 done, 0 failed, running gut2, gut3``); None
    clears it."""
    _RUN_CONTEXT[:] = [text] if text else []


def context_prefix(separator: str) -> str:
    """The text of :func:`set_run_context` followed by ``separator``, or nothing."""
    return f"{_RUN_CONTEXT[0]}{separator}" if _RUN_CONTEXT else ""


def is_many_sample_dir(path: str | Path) -> bool:
    """True when ``path`` holds a many-sample run (its ``samples_summary.tsv``)."""
    return (Path(path) / SAMPLES_SUMMARY_NAME).is_file()


def refuse_many_sample_dir(path: str | Path, command: str) -> None:
    """Raise a one-line :class:`UsageError` when ``path`` is a many-sample run: ``command``
    takes one sample's folder, ``DIR/<sample>``."""
    if is_many_sample_dir(path):
        raise UsageError(f"{path} holds a many-sample run (see {Path(path) / SAMPLES_SUMMARY_NAME}); "
                         f"{command} takes one sample's folder: pass {Path(path) / '<sample>'}")


def read_sample_counts(folder: Path) -> dict[str, Any] | None:
    """The ``counts`` of ``folder/run_summary.json`` (None when it is missing or unreadable)."""
    try:
        summary = json.loads((folder / "run_summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    counts = summary.get("counts") if isinstance(summary, dict) else None
    return counts if isinstance(counts, dict) else None


def write_samples_summary(root: Path, outcomes: list[SampleOutcome], status: str, exit_code: int | None,
                          seconds: float) -> None:
    """Write ``root/samples_summary.tsv`` and ``root/run_summary.json`` (atomically)."""
    lines = ["\t".join(COLUMNS)] + ["\t".join(outcome.row()) for outcome in outcomes]
    atomic_write_text(root / SAMPLES_SUMMARY_NAME, "\n".join(lines) + "\n")
    summary = {
        "status": status,
        "exit_code": exit_code,
        "virnucpro_version": __version__,
        "output_dir": str(root.resolve()),
        "samples_total": len(outcomes),
        "samples_done": sum(1 for o in outcomes if o.status == "ok"),
        "samples_failed": sum(1 for o in outcomes if o.status == "failed"),
        "wall_seconds": round(seconds, 3),
        "samples": [
            {"sample": o.name, "input": o.path, "folder": o.name, "status": o.status, "error": o.error,
             "exit_code": o.exit_code, "seconds": o.seconds, "run_summary": f"{o.name}/run_summary.json",
             "counts": o.counts}
            for o in outcomes
        ],
    }
    atomic_write_text(root / "run_summary.json", json.dumps(summary, indent=1) + "\n")
