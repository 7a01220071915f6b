"""The per-sequence rule and formats (chunk score, sequence call, chunk_scores rows, viral FASTA)."""

from __future__ import annotations

import io

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from virnucpro.io.fasta import FastaBytesRecord
from virnucpro.pipeline.report.per_sequence import (
    CONTIG_SUMMARY_HEADER,
    call_sequence,
    chunk_score_lines,
    contig_summary_line,
    sequence_result,
    write_viral_fasta,
)
from virnucpro.pipeline.report.results import (
    ChunkCall,
    ContigRow,
    chunk_calls,
    frame_scores,
    probabilities_from_logits,
)

logit_pairs = st.lists(
    st.tuples(st.floats(-20, 20, allow_nan=False), st.floats(-20, 20, allow_nan=False)), min_size=1, max_size=6
)


@settings(max_examples=500, deadline=None)
@given(logit_pairs)
def test_chunk_score_at_least_half_exactly_when_published_is_virus(logits):
    """Frames scored the published way (softmax to float32, printed); the chunk's (max + min) / 2 of
    score2 is >= 0.5 exactly when max score2 >= max score1, knife-edge chunks aside."""
    probs = probabilities_from_logits(np.array(logits, dtype=np.float64))
    rows = frame_scores([f"c_chunk_1F{i + 1}" for i in range(len(logits))], probs)
    (call,) = chunk_calls(rows)
    published = max(np.float32(r.score_virus) for r in rows) >= max(np.float32(r.score_others) for r in rows)
    assert call.is_virus == published
    knife_edge = abs(call.max_virus - call.max_others) < 1e-6
    assert (call.chunk_score >= 0.5) == published or knife_edge
    assert call.frames == len(logits)
    assert call.min_virus == min(float(np.float32(r.score_virus)) for r in rows)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(st.floats(0, 1, width=32), min_size=1, max_size=4), min_size=1, max_size=8),
       st.floats(0, 1))
def test_sequence_score_is_the_mean_chunk_score(chunks, min_score):
    calls = [ChunkCall(f"s_chunk_{i}", max(1 - v for v in c), max(c), min(c), len(c)) for i, c in enumerate(chunks)]
    result = call_sequence(calls, min_score)
    want = np.float32(np.mean([np.float32((max(c) + min(c)) / 2) for c in chunks], dtype=np.float64))
    assert abs(float(result.virus_score) - float(want)) <= 1e-7
    assert result.call == ("virus" if result.virus_score >= min_score else "not_virus")
    # one definition of a virus chunk: its chunk score >= min_score (float32), as the sequence call
    virus = sum(np.float32((max(c) + min(c)) / 2) >= np.float32(min_score) for c in chunks)
    assert (result.virus_chunks, result.virus_chunk_fraction) == (virus, virus / len(chunks))


def test_no_chunk_with_a_frame_is_no_call():
    assert call_sequence([], 0.5).call == "no_call"
    assert call_sequence([], 0.5).virus_score is None


def test_summary_and_chunk_rows():
    contig = ContigRow("s", 700, 2, 1)
    call = ChunkCall("s_chunk_2", 0.3, 0.7, 0.6, 2)
    result = sequence_result(contig, [call], 0.5)
    assert CONTIG_SUMMARY_HEADER == ("sequence_id\tlength\tchunks\tchunks_with_frames\tvirus_chunks\tmax_virus_score\t"
                                     "status\tvirus_score\tvirus_chunk_fraction\tcall\n")
    assert contig_summary_line(result) == "s\t700\t2\t1\t1\t0.7\tscored\t0.65\t1\tvirus\n"
    assert list(chunk_score_lines(result, 500)) == [
        "s\ts_chunk_1\t1\t500\t0\tNA\tNA\tNA\n",
        "s\ts_chunk_2\t350\t700\t2\t0.7\t0.65\tTrue\n",  # L=700, C=500: [349:700] (SPEC 2)
    ]
    # above its chunk score the chunk is no virus chunk, in both tables (it was still "1" before issue 29)
    above = sequence_result(contig, [call], 0.66)
    assert contig_summary_line(above) == "s\t700\t2\t1\t0\t0.7\tscored\t0.65\t0\tnot_virus\n"
    assert list(chunk_score_lines(above, 500))[1].endswith("\t0.65\tFalse\n")


def test_below_half_a_lower_min_score_makes_the_same_virus_chunk_in_every_table():
    """The issue's read: chunk score 0.495 at --min-score 0.49 is a virus chunk in contig_summary,
    chunk_scores and viral_regions alike (the published call, below 0.5, stays False)."""
    from virnucpro.pipeline.report.regions import ChunkScore, sequence_regions

    call = ChunkCall("r_chunk_1", 0.51, 0.5, 0.49, 2)
    assert not call.is_virus and call.chunk_score == np.float32(0.495)
    result = sequence_result(ContigRow("r", 150, 1, 1), [call], 0.49)
    summary = contig_summary_line(result).split("\t")
    (chunk_row,) = chunk_score_lines(result, 500)
    (region,) = sequence_regions("r", [ChunkScore(1, 150, call.chunk_score)], 0.49, 1, 2)
    assert (summary[4], summary[8], summary[9]) == ("1", "1", "virus\n")
    assert chunk_row.rstrip("\n").split("\t")[7] == "True" and region.virus_chunks == 1


def test_too_short_and_empty_records_are_not_scored():
    short = sequence_result(ContigRow("t", 90, 1, 1), [ChunkCall("t_chunk_1", 0.1, 0.9, 0.9, 1)], 0.5, too_short=True)
    assert contig_summary_line(short) == "t\t90\t1\t0\t0\tNA\ttoo_short\tNA\tNA\tno_call\n"
    assert list(chunk_score_lines(short, 500)) == []
    empty = sequence_result(ContigRow("e", 0, 0, 0), [], 0.5, too_short=True)
    assert contig_summary_line(empty) == "e\t0\t0\t0\t0\tNA\tempty_skipped\tNA\tNA\tno_call\n"


def test_viral_fasta_keeps_header_and_case_wraps_at_60():
    out = io.BytesIO()
    seq = b"acgT" * 31  # 124 bases
    n = write_viral_fasta([FastaBytesRecord("v1", seq, "v1 some description  x=1"),
                           FastaBytesRecord("v2", b"ACG", "v2")], out)
    assert n == 2
    assert out.getvalue() == (b">v1 some description  x=1\n" + seq[:60] + b"\n" + seq[60:120] + b"\n" + seq[120:]
                              + b"\n>v2\nACG\n")
    empty = io.BytesIO()
    assert write_viral_fasta([], empty) == 0 and empty.getvalue() == b""


def test_demo_rows_end_with_the_demo_column():
    from virnucpro.pipeline.report.per_sequence import DEMO_VALUE, table_header

    result = sequence_result(ContigRow("s", 700, 2, 1), [ChunkCall("s_chunk_2", 0.3, 0.7, 0.6, 2)], 0.5, demo=True)
    assert table_header(CONTIG_SUMMARY_HEADER, True) == CONTIG_SUMMARY_HEADER.rstrip("\n") + "\tmodels\n"
    assert table_header(CONTIG_SUMMARY_HEADER, False) == CONTIG_SUMMARY_HEADER
    assert contig_summary_line(result) == f"s\t700\t2\t1\t1\t0.7\tscored\t0.65\t1\tvirus\t{DEMO_VALUE}\n"
    assert all(line.endswith(f"\t{DEMO_VALUE}\n") for line in chunk_score_lines(result, 500))
