"""Re-thresholding a finished run is free: --min-score and a higher --min-length recompute no
embedding, a lower --min-length computes only the newly included records, and the files equal
those of a fresh run with the new settings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import TINY_REF, run_cli
from tests.helpers.published import KNIFE_EDGE, read_table
from tests.helpers.shared_run import shared_kept_run
from tests.integration.test_predict_fixture import fixture_args

pytestmark = pytest.mark.slow

SUBSET_RECORDS = 12  # ctg1001_0 .. ctg1001_11: 195 to 2928 bp


@pytest.fixture(scope="module")
def subset(tmp_path_factory) -> Path:
    text = (TINY_REF / "contigs.fa").read_text()
    records = text.split(">")[1 : SUBSET_RECORDS + 1]
    path = tmp_path_factory.mktemp("subset") / "subset.fa"
    path.write_text("".join(">" + r for r in records))
    return path


def predict(fasta: Path, out: Path, *extra: str) -> dict:
    args = fixture_args(out, "--shard-size", "10", *extra)
    args[1] = str(fasta)
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr.decode()
    return json.loads((out / "run_summary.json").read_text())


def computed(summary: dict) -> dict[str, int]:
    return {name: summary["stages"][name]["computed_shards"] for name in ("dnabert", "esm", "score")}


def summary_rows(out: Path) -> dict[str, list[str]]:
    return {row[0]: row for row in read_table(out / "contig_summary.tsv")[1]}


def assert_same_answer(a: Path, b: Path) -> None:
    """Same sequences, statuses and calls; scores equal within the batching tolerance (SPEC 9)."""
    rows_a, rows_b = summary_rows(a), summary_rows(b)
    assert list(rows_a) == list(rows_b)
    for seq_id, ra in rows_a.items():
        rb = rows_b[seq_id]
        assert ra[:5] + ra[6:7] + ra[9:] == rb[:5] + rb[6:7] + rb[9:], seq_id
        for col in (5, 7):
            assert (ra[col] == "NA") == (rb[col] == "NA")
            if ra[col] != "NA":
                assert abs(float(ra[col]) - float(rb[col])) <= 1e-6
    chunks_a, chunks_b = read_table(a / "chunk_scores.tsv")[1], read_table(b / "chunk_scores.tsv")[1]
    assert [r[:5] for r in chunks_a] == [r[:5] for r in chunks_b]
    for ra, rb in zip(chunks_a, chunks_b):
        if ra[6] != "NA":
            assert abs(float(ra[6]) - float(rb[6])) <= 1e-6
            assert ra[7] == rb[7] or abs(float(ra[6]) - 0.5) < KNIFE_EDGE
    assert (a / "viral_contigs.fa").read_bytes() == (b / "viral_contigs.fa").read_bytes()
    high_a, high_b = read_table(a / "prediction_results_highestscore.csv")[1], read_table(
        b / "prediction_results_highestscore.csv")[1]
    assert [r[0] for r in high_a] == [r[0] for r in high_b]


def test_rethreshold_recomputes_nothing_and_equals_a_fresh_run(subset, tmp_path, tmp_path_factory):
    run = tmp_path / "run"
    first = predict(subset, run, "--min-length", "500")
    assert first["calls"]["min_length"] == 500
    assert first["counts"]["too_short"] == sum(1 for r in summary_rows(run).values() if int(r[1]) < 500) > 0
    shards_first = first["counts"]["shards"]

    # Higher threshold and higher minimum length: nothing embedded or scored again.
    again = predict(subset, run, "--min-score", "0.55", "--min-length", "1000")
    assert computed(again) == {"dnabert": 0, "esm": 0, "score": 0}
    assert again["stages"]["score"]["reused_shards"] == shards_first
    assert (again["calls"]["min_score"], again["calls"]["min_length"]) == (0.55, 1000)
    log = (run / "virnucpro.log").read_text()
    assert "no embedding computed" in log
    for row in summary_rows(run).values():
        if int(row[1]) < 1000:
            assert (row[6], row[9]) == ("too_short", "no_call")
        elif row[7] != "NA":
            assert row[9] == ("virus" if np.float32(row[7]) >= np.float32(0.55) else "not_virus")
    fresh = tmp_path / "fresh"
    predict(subset, fresh, "--min-score", "0.55", "--min-length", "1000")
    assert_same_answer(run, fresh)

    # Lower minimum length: only the records of 0-499 bp are computed, in added shards.
    lower = predict(subset, run)
    index = json.loads((run / "work" / "translate.json").read_text())
    added = [s for s in index["shards"] if s["below"] == 500]
    assert added and all(s["min_length"] == 0 for s in added)
    assert computed(lower) == {"dnabert": len(added), "esm": len(added), "score": len(added)}
    assert lower["stages"]["score"]["reused_shards"] == shards_first
    # ... and the answer is that of a fresh run with the defaults (the shared fixture run, restricted).
    whole = shared_kept_run(tmp_path_factory)
    mine = summary_rows(run)
    theirs = {k: v for k, v in summary_rows(whole).items() if k in mine}
    assert list(theirs) == list(mine)
    for seq_id, row in mine.items():
        assert row[9] == theirs[seq_id][9] and row[6] == theirs[seq_id][6], seq_id
    ours = read_table(run / "prediction_results.txt")[1]
    ref = {r[0]: r for r in read_table(whole / "prediction_results.txt")[1]}
    assert [r[0] for r in ours] == [f for f in ref if f.rsplit("_chunk_", 1)[0] in mine]
    for row in ours:
        assert abs(float(row[3]) - float(ref[row[0]][3])) <= 1e-6
