"""Duplicate reads end to end: identical frames are embedded once per model and scored like the original."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "example_contigs.fa"


@pytest.mark.slow
def test_duplicate_contigs_are_embedded_once_and_reported(tmp_path: Path) -> None:
    records = EXAMPLE.read_text().split(">")[1:3]
    first_seq = "".join(records[0].splitlines()[1:])
    other = ">" + records[1]
    fasta = tmp_path / "dups.fa"
    fasta.write_text(f">a\n{first_seq}\n{other}>b\n{first_seq}\n>c\n{first_seq}\n")
    out = tmp_path / "out"
    result = run_cli("predict", str(fasta), "-o", str(out), "--models", "demo", "--no-dashboard")
    assert result.returncode == 0, result.stderr.decode()
    summary = json.loads((out / "run_summary.json").read_text())
    rows = (out / "prediction_results.txt").read_text().splitlines()[1:]
    scores = {line.split("\t", 1)[0]: line.split("\t", 1)[1] for line in rows}
    frames_of_a = sum(1 for frame_id in scores if frame_id.startswith("a_"))
    assert frames_of_a > 0
    for kind in ("dnabert", "esm"):
        # b and c repeat a: every one of their frames reuses a's embedding.
        assert summary["stages"][kind]["duplicate_frames"] == 2 * frames_of_a, summary["stages"][kind]
    for frame_id, rest in scores.items():
        if frame_id.startswith("a_"):
            assert scores["b_" + frame_id[2:]] == rest == scores["c_" + frame_id[2:]]
