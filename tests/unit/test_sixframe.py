"""Six-frame translation and frame selection (SPEC 3) against the per-codon reference."""

from __future__ import annotations

from Bio.Data import CodonTable
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.spec_reference import CODON_TABLE, spec_kept_frames
from virnucpro.sequence.chunking import chunk_bounds
from virnucpro.sequence.sixframe import FRAME_SUFFIXES, kept_frames, reverse_complement, translate_windows

ALPHABETS = [
    "ACGT",
    "ACGTacgt",
    "ACGTN",
    "ACGTACGTACGTNRYKMSWBDHV",
    "ACGTUacgtun-.*X",
    "TTTAAAGGGCCCATG",  # few stops in some frames: many kept frames
]


def as_tuples(chunk: str) -> list[tuple[str, str, str]]:
    return [(k.suffix, k.nucleotide, k.protein) for k in kept_frames(chunk)]


def test_reference_table_is_the_standard_code() -> None:
    table = CodonTable.unambiguous_dna_by_id[1]
    for codon, amino in CODON_TABLE.items():
        assert amino == ("*" if codon in table.stop_codons else table.forward_table[codon])


def test_codon_with_n_is_dropped_not_x() -> None:
    # F1 codons: ATG, NCC, AAA -> "MK" (NCC dropped); slice is chunk[0 : 1 + 3*2].
    frames = {k.suffix: k for k in kept_frames("ATGNCCAAA")}
    assert frames["F1"].protein == "MK"
    assert frames["F1"].nucleotide == "ATGNCCA"


def test_nucleotide_slice_has_one_extra_base() -> None:
    frames = {k.suffix: k for k in kept_frames("ATGAAACCCG")}
    assert frames["F1"].protein == "MKP"
    assert frames["F1"].nucleotide == "ATGAAACCCG"  # 3*3 + 1 bases


def test_lower_case_is_translated_and_upper_cased() -> None:
    assert as_tuples("atgaaaccc") == as_tuples("ATGAAACCC")
    assert all(k.nucleotide.isupper() for k in kept_frames("atgaaacccggg"))


def test_reverse_complement_keeps_other_characters() -> None:
    assert reverse_complement("ACGTNRy-") == "-YRNACGT"


def test_too_short_chunks() -> None:
    assert kept_frames("") == []
    assert kept_frames("AT") == []
    assert [k.suffix for k in kept_frames("ATG")] == ["F1", "R1"]  # ATG -> M, CAT -> H


def test_frame_number() -> None:
    assert [k.number for k in kept_frames("ATG")] == [1, 4]
    assert FRAME_SUFFIXES == ("F1", "F2", "F3", "R1", "R2", "R3")


@settings(max_examples=400, deadline=None)
@given(data=st.data(), alphabet=st.sampled_from(ALPHABETS), length=st.integers(0, 120))
def test_single_chunk_matches_reference(data: st.DataObject, alphabet: str, length: int) -> None:
    chunk = data.draw(st.text(alphabet=alphabet, min_size=length, max_size=length))
    assert as_tuples(chunk) == spec_kept_frames(chunk)


@settings(max_examples=150, deadline=None)
@given(
    records=st.lists(st.text(alphabet="ACGTTTAANacg", min_size=1, max_size=90), min_size=1, max_size=6),
    chunk_length=st.integers(3, 25),
)
def test_many_windows_of_one_buffer(records: list[str], chunk_length: int) -> None:
    """Windows from several records in one buffer give each chunk's own frames."""
    starts, ends, expected = [], [], []
    offset = 0
    for seq in records:
        for s, e in chunk_bounds(len(seq), chunk_length):
            window = len(starts)
            starts.append(offset + s)
            ends.append(offset + e)
            for suffix, nucleotide, protein in spec_kept_frames(seq[s:e]):
                expected.append((window, FRAME_SUFFIXES.index(suffix), nucleotide.encode(), protein.encode()))
        offset += len(seq)
    assert translate_windows("".join(records).encode(), starts, ends) == expected
