"""Our translate output against the published tool's own output (tests/data/tiny_reference)."""

from __future__ import annotations

from pathlib import Path

from virnucpro.pipeline.stages.frames import translate_file


def parse(path: Path) -> list[tuple[str, str]]:
    records: list[tuple[str, str]] = []
    for line in path.read_text().splitlines():
        if line.startswith(">"):
            records.append((line[1:].split()[0], ""))
        elif line.strip():
            records[-1] = (records[-1][0], records[-1][1] + line.strip())
    return records


def test_three_files_equal_the_published_output(tmp_path: Path, tiny_ref: Path) -> None:
    outputs, stats = translate_file(tiny_ref / "contigs.fa", tmp_path, 500)
    expected = tiny_ref / "expected"
    pairs = [
        (outputs.chunked, expected / "contigs_chunked500.fa"),
        (outputs.nucleotide, expected / "contigs_identified_nucleotide.fa"),
        (outputs.protein, expected / "contigs_identified_protein.faa"),
    ]
    for ours, theirs in pairs:
        assert ours.name == theirs.name
        assert parse(ours) == parse(theirs), ours.name
    assert (stats.records, stats.chunks, stats.kept_frames) == (160, 432, 433)


def test_unwrapped_files_are_byte_identical(tmp_path: Path, tiny_ref: Path) -> None:
    """The published nucleotide and protein files are unwrapped, like ours."""
    outputs, _ = translate_file(tiny_ref / "contigs.fa", tmp_path, 500)
    expected = tiny_ref / "expected"
    assert outputs.nucleotide.read_bytes() == (expected / "contigs_identified_nucleotide.fa").read_bytes()
    assert outputs.protein.read_bytes() == (expected / "contigs_identified_protein.faa").read_bytes()
