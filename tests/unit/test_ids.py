"""The chunk / frame ID format against the published tool's own IDs."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from virnucpro.sequence.ids import chunk_id, chunk_of_frame, frame_id, parse_chunk_id, record_of_chunk
from virnucpro.sequence.sixframe import FRAME_SUFFIXES


def test_published_ids_round_trip(tiny_ref):
    lines = (tiny_ref / "expected" / "prediction_results.txt").read_text().splitlines()[1:]
    chunks = (tiny_ref / "expected" / "prediction_results_highestscore.csv").read_text().splitlines()[1:]
    published_chunks = {line.split("\t")[0] for line in chunks}
    for line in lines:
        frame = line.split("\t")[0]
        chunk = chunk_of_frame(frame)
        assert chunk in published_chunks
        record, k = parse_chunk_id(chunk)
        assert chunk_id(record, k) == chunk
        assert frame_id(chunk, frame[-2:]) == frame
        assert record_of_chunk(chunk) == record


def test_record_id_containing_chunk_separator_is_kept_whole():
    # Published quirk: no escaping, the record is everything before the LAST "_chunk_".
    chunk = chunk_id("x_chunk_2", 1)
    assert chunk == "x_chunk_2_chunk_1"
    assert record_of_chunk(chunk) == "x_chunk_2"
    assert parse_chunk_id(chunk) == ("x_chunk_2", 1)
    assert chunk_of_frame(frame_id(chunk, "R3")) == chunk


def test_ids_that_are_not_chunk_ids_do_not_parse():
    assert parse_chunk_id("contig7") is None
    assert parse_chunk_id("contig7_chunk_") is None
    assert parse_chunk_id("contig7_chunk_x1") is None


@given(st.text(min_size=1).filter(lambda s: not s.isspace()), st.integers(1, 10**6), st.sampled_from(FRAME_SUFFIXES))
def test_every_record_id_round_trips(record, k, suffix):
    frame = frame_id(chunk_id(record, k), suffix)
    assert chunk_of_frame(frame) == chunk_id(record, k)
    assert parse_chunk_id(chunk_of_frame(frame)) == (record, k)
