"""The translate stage end to end through files, against the per-codon SPEC reference."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.spec_reference import spec_translate_records
from virnucpro.errors import InputError
from virnucpro.pipeline.stages import frames as stage
from virnucpro.pipeline.stages.frames import TranslateStats, iter_chunk_frames, output_paths, translate_file

ALPHABETS = [
    "ACGT",
    "ACGTacgt",
    "ACGTN",
    "ACGTNRYKMSWBDHVacgtn",
    "TTTAAAGGGCCCATGn",
    "ACGTUacgu",  # RNA: read as DNA (U as T)
    "ACGTU-.X",  # U is read as T; the others are input errors
    "ACGTACGTACGTEFILPQZxj*",  # other letters: a record may trip the protein rule
]


def looks_like_protein(seq: str) -> bool:
    """The documented DNA-versus-protein rule of virnucpro.io.fasta, restated."""
    letters = [c.upper() for c in seq[:2000] if c.isalpha()]
    other = [c for c in letters if c not in "ACGTUN"]
    return 2 * len(other) > len(letters) and any(c in "EFIJLOPQZ" for c in letters)


def expected_error(records: list[tuple[str, str]]) -> str | None:
    """The reader's error for the first bad record (protein rule first, then non-IUPAC characters)."""
    for _, seq in records:
        if looks_like_protein(seq):
            return "looks like a protein"
        if any(c.upper() not in "ACGTUNRYSWKMBDHV" for c in seq):
            return "is not a nucleotide code|alignment gap characters are not allowed"
    return None


def as_dna(records: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The reader reads RNA as DNA: U as T, u as t."""
    return [(rid, seq.replace("U", "T").replace("u", "t")) for rid, seq in records]


def parse(path: Path) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for line in path.read_text().splitlines():
        if line.startswith(">"):
            out.append((line[1:], ""))
        elif line:
            out[-1] = (out[-1][0], out[-1][1] + line)
    return out


def run(records: list[tuple[str, str]], chunk_length: int, directory: Path) -> tuple[list, TranslateStats]:
    source = directory / "in.fa"
    source.write_text("".join(f">{rid} some description\n{seq}\n" for rid, seq in records))
    outputs, stats = translate_file(source, directory / "out", chunk_length)
    return [parse(p) for p in outputs.all()], stats


@st.composite
def record_sets(draw: st.DrawFn) -> tuple[list[tuple[str, str]], int]:
    chunk_length = draw(st.sampled_from([300, 500, 3, 4, 5, 7, 11]))
    special = [1, 2, chunk_length - 1, chunk_length, chunk_length + 1, 2 * chunk_length, 3 * chunk_length + 1]
    lengths = st.one_of(st.sampled_from([n for n in special if n > 0]), st.integers(1, 4 * chunk_length))
    alphabet = draw(st.sampled_from(ALPHABETS))
    count = draw(st.integers(1, 5))
    records = []
    for i in range(count):
        length = draw(lengths)
        # Cheap random sequences: repeat a drawn motif (hypothesis text of 1.5 kbp is slow).
        motif = draw(st.text(alphabet=alphabet, min_size=1, max_size=64))
        seq = (motif * (length // len(motif) + 1))[:length]
        shuffle = draw(st.randoms(use_true_random=False))
        letters = list(seq)
        shuffle.shuffle(letters)
        records.append((f"rec{i}", "".join(letters)))
    return records, chunk_length


@settings(max_examples=120, deadline=None)
@given(case=record_sets())
def test_files_match_reference(case: tuple[list[tuple[str, str]], int]) -> None:
    records, chunk_length = case
    with tempfile.TemporaryDirectory() as tmp:
        error = expected_error(records)
        if error:
            with pytest.raises(InputError, match=error):
                run(records, chunk_length, Path(tmp))
            assert not (Path(tmp) / "out").exists()
            return
        got, stats = run(records, chunk_length, Path(tmp))
    expected = spec_translate_records(as_dna(records), chunk_length)
    assert got == [list(x) for x in expected]
    assert stats.chunks == len(expected[0])
    assert stats.kept_frames == len(expected[1])


@settings(max_examples=40, deadline=None)
@given(case=record_sets(), batch=st.integers(1, 200))
def test_small_batches_give_the_same_result(case, batch: int) -> None:
    """Long records are translated in slices of chunks; slicing must not change anything."""
    records, chunk_length = case
    if expected_error(records):
        return
    old = stage.BATCH_BASES
    stage.BATCH_BASES = batch
    try:
        with tempfile.TemporaryDirectory() as tmp:
            got, _ = run(records, chunk_length, Path(tmp))
    finally:
        stage.BATCH_BASES = old
    assert got == [list(x) for x in spec_translate_records(as_dna(records), chunk_length)]


def test_iter_chunk_frames_matches_files(tmp_path: Path, tiny_ref: Path) -> None:
    stats = TranslateStats()
    chunks = list(iter_chunk_frames(tiny_ref / "contigs.fa", 500, stats))
    outputs, file_stats = translate_file(tiny_ref / "contigs.fa", tmp_path, 500)
    assert [(c.chunk_id, c.sequence) for c in chunks] == parse(outputs.chunked)
    frames = [(fid, f) for c in chunks for fid, f in zip(c.frame_ids(), c.frames)]
    assert [(fid, f.nucleotide) for fid, f in frames] == parse(outputs.nucleotide)
    assert [(fid, f.protein) for fid, f in frames] == parse(outputs.protein)
    assert chunks[0].record_id == "ctg1001_0" and chunks[0].chunk_index == 1
    for name in ("records", "skipped_empty", "bases", "chunks", "chunks_with_kept_frame", "kept_frames"):
        assert getattr(stats, name) == getattr(file_stats, name), name
    assert stats.records == 160 and stats.chunks == 432 and stats.kept_frames == 433
    assert len(stats.contigs) == 160
    assert sum(c.chunks for c in stats.contigs) == 432
    assert stats.contigs[0].id == "ctg1001_0" and stats.contigs[0].length == 557


def test_empty_records_are_skipped_and_counted(tmp_path: Path) -> None:
    source = tmp_path / "e.fa"
    source.write_text(">a\n>b\nATGAAACCC\n>c\n\n>d\nTTT\n")
    outputs, stats = translate_file(source, tmp_path / "out", 500)
    assert (stats.records, stats.skipped_empty, stats.chunks) == (4, 2, 2)
    assert [c.id for c in stats.contigs] == ["a", "b", "c", "d"]
    assert [rid for rid, _ in parse(outputs.chunked)] == ["b_chunk_1", "d_chunk_1"]


def test_all_records_empty_is_an_input_error(tmp_path: Path) -> None:
    source = tmp_path / "e.fa"
    source.write_text(">a\n>b\n")
    with pytest.raises(InputError, match="all 2 records are empty"):
        translate_file(source, tmp_path / "out", 500)
    assert not (tmp_path / "out").exists()


def test_late_error_leaves_no_outputs(tmp_path: Path) -> None:
    source = tmp_path / "late.fa"
    source.write_text("".join(f">r{i}\n{'ATGAAACCC' * 200}\n" for i in range(3000)) + ">r5\nACGT\n")
    out = tmp_path / "existing"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="duplicate record ID 'r5'"):
        translate_file(source, out, 500)
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


def test_output_paths() -> None:
    paths = output_paths("data/sample.fasta.gz", "res", 300)
    assert [p.as_posix() for p in paths.all()] == [
        "res/sample_chunked300.fa",
        "res/sample_identified_nucleotide.fa",
        "res/sample_identified_protein.faa",
    ]


def test_chunk_length_below_three_is_rejected(tmp_path: Path, tiny_ref: Path) -> None:
    with pytest.raises(ValueError):
        translate_file(tiny_ref / "contigs.fa", tmp_path, 2)
