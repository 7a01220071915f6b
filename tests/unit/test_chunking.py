"""Chunking (SPEC 2) against the literal transcription in tests/spec_reference.py."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.spec_reference import spec_chunks
from virnucpro.sequence.chunking import chunk_bounds, chunk_count, chunk_ids, chunk_sequence, chunk_starts


def test_spec_example_700_500() -> None:
    assert chunk_bounds(700, 500) == [(0, 500), (349, 700)]


@pytest.mark.parametrize("length", [1, 2, 299, 300])
def test_short_sequence_is_one_chunk(length: int) -> None:
    assert chunk_bounds(length, 300) == [(0, length)]


def test_exact_multiple_has_no_overlap() -> None:
    assert chunk_bounds(1500, 500) == [(0, 500), (500, 1000), (1000, 1500)]


def test_chunk_ids() -> None:
    assert list(chunk_ids("ctg1", 2)) == ["ctg1_chunk_1", "ctg1_chunk_2"]


def test_empty_and_bad_arguments() -> None:
    assert chunk_count(0, 500) == 0
    with pytest.raises(ValueError):
        chunk_starts(0, 500)
    with pytest.raises(ValueError):
        chunk_starts(10, 0)


@settings(max_examples=300, deadline=None)
@given(length=st.integers(1, 5000), chunk_length=st.sampled_from([3, 4, 5, 7, 10, 300, 500]))
def test_matches_spec(length: int, chunk_length: int) -> None:
    seq = "".join(chr(65 + (i * 7919) % 26) for i in range(length))  # distinct-ish letters
    assert chunk_sequence(seq, chunk_length) == spec_chunks(seq, chunk_length)
    assert len(chunk_starts(length, chunk_length)) == chunk_count(length, chunk_length)


@pytest.mark.parametrize("chunk_length", [300, 500])
@pytest.mark.parametrize("delta", [-1, 0, 1])
@pytest.mark.parametrize("multiple", [1, 2, 3, 7])
def test_boundaries_match_spec(chunk_length: int, delta: int, multiple: int) -> None:
    length = multiple * chunk_length + delta
    seq = "".join(chr(65 + (i * 31) % 26) for i in range(length))
    assert chunk_sequence(seq, chunk_length) == spec_chunks(seq, chunk_length)
