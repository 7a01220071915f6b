"""The per-sequence answer of a real fixture run, checked against values computed here from
``prediction_results.txt`` and the input FASTA (no virnucpro code in the oracle)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import TINY_REF
from tests.helpers.published import KNIFE_EDGE, chunk_maxima, read_table
from tests.helpers.shared_run import shared_kept_run

EXPECTED = TINY_REF / "expected"

pytestmark = pytest.mark.slow  # a predict run in a subprocess (shared with other modules)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    return shared_kept_run(tmp_path_factory)


def input_records(path: Path) -> list[tuple[str, str]]:
    """(header line without '>', sequence) of every record, by hand."""
    records: list[tuple[str, list[str]]] = []
    for line in path.read_text().splitlines():
        if line.startswith(">"):
            records.append((line[1:].rstrip(), []))
        elif records:
            records[-1][1].append(line.strip())
    return [(head, "".join(parts)) for head, parts in records]


def spec_starts(length: int, chunk_length: int) -> list[int]:
    """SPEC 2 chunk starts, literally (overlap spread over n, not n - 1)."""
    n = math.ceil(length / chunk_length)
    overlap = n * chunk_length - length
    lo = overlap // n
    hi = lo + 1
    need = overlap - lo * (n - 1)
    shifts = ([hi] * need + [lo] * max(0, n - 1 - need) + [0])[:n]
    return [k * chunk_length - sum(shifts[:k]) for k in range(n)]


def expected_answer(predictions: Path, min_score: float = 0.5):
    """Per sequence: (virus_score float32 or None, fraction or None, call), from the frame table."""
    maxima = chunk_maxima(read_table(predictions)[1])
    per_seq: dict[str, list[tuple[float, bool]]] = {}
    for chunk, (m1, m2, n2, _k) in maxima.items():
        per_seq.setdefault(chunk.rsplit("_chunk_", 1)[0], []).append((float(np.float32((m2 + n2) / 2)), m2 >= m1))
    answer = {}
    for seq, chunks in per_seq.items():
        score = np.float32(sum(c for c, _ in chunks) / len(chunks))
        answer[seq] = (score, sum(v for _, v in chunks) / len(chunks), "virus" if score >= min_score else "not_virus")
    return answer, maxima


def test_chunk_score_rule_reproduces_published_is_virus(run):
    """(max + min) / 2 of score2 >= 0.5 exactly when the published Is_Virus is True (knife-edge aside),
    on the published tool's own tables and on ours."""
    for predictions, highest in ((EXPECTED / "prediction_results.txt", EXPECTED / "prediction_results_highestscore.csv"),
                                 (run / "prediction_results.txt", run / "prediction_results_highestscore.csv")):
        maxima = chunk_maxima(read_table(predictions)[1])
        edges = 0
        for chunk, is_virus in read_table(highest)[1]:
            m1, m2, n2, _ = maxima[chunk]
            edge = abs(m2 - m1) < KNIFE_EDGE
            edges += edge
            assert ((m2 + n2) / 2 >= 0.5) == (is_virus == "True") or edge, chunk
        assert edges <= 1


def test_chunk_scores_table(run):
    header, rows = read_table(run / "chunk_scores.tsv")
    assert header.split("\t") == ["sequence_id", "chunk", "start", "end", "kept_frames", "max_virus_score",
                                  "chunk_score", "virus_chunk"]
    maxima = chunk_maxima(read_table(run / "prediction_results.txt")[1])
    calls = dict(read_table(run / "prediction_results_highestscore.csv")[1])
    records = input_records(TINY_REF / "contigs.fa")
    want_rows = []
    for head, seq in records:
        seq_id = head.split()[0]
        for k, start in enumerate(spec_starts(len(seq), 500), start=1):
            want_rows.append((seq_id, f"{seq_id}_chunk_{k}", start + 1, min(start + 500, len(seq))))
    assert [(r[0], r[1], int(r[2]), int(r[3])) for r in rows] == want_rows
    for row in rows:
        chunk = row[1]
        if chunk not in maxima:
            assert row[4:] == ["0", "NA", "NA", "NA"]
            continue
        m1, m2, n2, k = maxima[chunk]
        assert int(row[4]) == k
        assert np.float32(row[5]) == np.float32(m2)
        assert np.float32(row[6]) == np.float32((m2 + n2) / 2)
        # a virus chunk: chunk score >= --min-score (0.5 here), the published call knife-edge chunks aside
        assert row[7] == str(np.float32(row[6]) >= np.float32(0.5))
        assert row[7] == calls[chunk] or abs(m2 - m1) < KNIFE_EDGE


def test_sequence_scores_and_calls(run):
    header, rows = read_table(run / "contig_summary.tsv")
    assert header.split("\t")[-3:] == ["virus_score", "virus_chunk_fraction", "call"]
    answer, _ = expected_answer(run / "prediction_results.txt")
    assert len(rows) == 160
    for row in rows:
        seq_id, status, score, fraction, call = row[0], row[6], row[7], row[8], row[9]
        if seq_id not in answer:
            assert (status, score, fraction, call) == ("no_kept_frame", "NA", "NA", "no_call")
            continue
        want_score, want_fraction, want_call = answer[seq_id]
        assert status == "scored"
        assert np.float32(score) == want_score
        assert abs(float(fraction) - want_fraction) < 1e-6
        assert call == want_call
    # The published tool's own scores give the same calls (no sequence sits within 1e-5 of 0.5 here).
    published, _ = expected_answer(EXPECTED / "prediction_results.txt")
    assert {k: v[2] for k, v in published.items()} == {k: v[2] for k, v in answer.items()}


def test_viral_fasta_has_the_virus_calls_as_in_the_input(run):
    answer, _ = expected_answer(run / "prediction_results.txt")
    want = b""
    for head, seq in input_records(TINY_REF / "contigs.fa"):
        if answer.get(head.split()[0], (None, None, ""))[2] == "virus":
            want += b">" + head.encode() + b"\n"
            want += b"".join(seq[i:i + 60].encode() + b"\n" for i in range(0, len(seq), 60))
    got = (run / "viral_contigs.fa").read_bytes()
    assert got == want and got.count(b">") == sum(v[2] == "virus" for v in answer.values()) > 0


def test_run_summary_calls(run):
    summary = json.loads((run / "run_summary.json").read_text())
    answer, _ = expected_answer(run / "prediction_results.txt")
    calls = [v[2] for v in answer.values()]
    assert summary["calls"] == {"virus": calls.count("virus"), "not_virus": calls.count("not_virus"),
                                "no_call": 160 - len(calls), "min_score": 0.5, "min_length": 0,
                                "region_gap": 1, "region_min_chunks": 2}
    assert summary["outputs"]["chunk_scores"] == "chunk_scores.tsv"
    assert summary["outputs"]["viral_fasta"] == "viral_contigs.fa"
    assert summary["counts"]["sequences_scored"] == len(calls)
    last = (run / "virnucpro.log").read_text().strip().splitlines()[-1]
    assert f"{calls.count('virus')} of {len(calls)} scored sequence(s) called virus at --min-score 0.5" in last
    assert str(run / "viral_contigs.fa") in last
