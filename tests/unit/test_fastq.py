"""FASTQ input: the same records as the FASTA of the same reads, compression from the bytes,
one-line errors naming the file and the record number."""

from __future__ import annotations

import bz2
import gzip
import lzma
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from virnucpro.errors import InputError
from virnucpro.io.fasta import input_stem, read_fasta, read_fasta_bytes
from virnucpro.io.fastq import parse_fastq

FASTQ = b"@r1 first read\nACGTACGT\n+\nIIIIIIII\n@r2\nttttNN\n+r2\n@@@+!!\n"
EXPECTED = [("r1", "ACGTACGT", "r1 first read"), ("r2", "ttttNN", "r2")]


def records(path: Path) -> list[tuple[str, str, str]]:
    return [(r.id, r.sequence, r.description) for r in read_fasta(path)]


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("compress", [bytes, gzip.compress, bz2.compress, lzma.compress])
def test_fastq_is_read_like_fasta_whatever_the_compression(tmp_path: Path, compress) -> None:
    path = write(tmp_path, "reads.dat", compress(FASTQ))  # the name says nothing: bytes decide
    assert records(path) == EXPECTED
    with read_fasta_bytes(path) as reader:
        list(reader)
        assert reader.format == "fastq"


def test_multi_line_fastq_and_quality_lines_that_look_like_headers(tmp_path: Path) -> None:
    data = b"\n@r1\nACGT\nAC\n+\n@III\n+I\n\n@r2\nGG\n+\n@@\n"
    assert records(write(tmp_path, "m.fq", data)) == [("r1", "ACGTAC", "r1"), ("r2", "GG", "r2")]


def test_crlf_and_rna_and_empty_read(tmp_path: Path) -> None:
    data = b"@r1\r\nACGU\r\n+\r\nIIII\r\n@r2\n\n+\n\n@r3\nA\n+\nI"
    assert records(write(tmp_path, "c.fq", data)) == [("r1", "ACGT", "r1"), ("r2", "", "r2"), ("r3", "A", "r3")]


@pytest.mark.parametrize(("data", "message"), [
    (b"@r1\nACGT\n+\nIII", "FASTQ record 1 is truncated: 3 quality characters for 4 bases"),
    (b"@r1\nACGT\n+\nIIII\n@r2\nACGT\n", "FASTQ record 2 is truncated: the input ends before its '+' line"),
    (b"@r1\nACGT\n+\nIIIII\n", "FASTQ record 1 is malformed: 5 quality characters for 4 bases"),
    (b"@r1\nACGT\n@r2\nAC\n+\nII\n", "FASTQ record 1 is malformed: no '+' line before the next '@' header"),
    # the third line is not '+': malformed (it is shown), not "truncated", also in the last record
    (b"@r1\nACGT\n+\nIIII\n@r2\nACGT\n-\nIIII\n",
     "FASTQ record 2 is malformed: no '+' line after its sequence (its third line is '-')"),
    (b"@r1\nACGT\nIIII\n@r2\nAC\n+\nII\n",
     "FASTQ record 1 is malformed: no '+' line before the next '@' header (its third line is 'IIII')"),
    (b"@r1\nACGT\n+\nIIII\nr2\nAC\n+\nII\n", "FASTQ record 2: expected a header line starting with '@'"),
    (b"@r1\nACGT\n+\nIIII\n@r1\nAC\n+\nII\n", "duplicate record ID 'r1' (records 1 and 2)"),
    (b"@r1\nAC*T\n+\nIIII\n", "record 'r1': '*' at position 3 is not a nucleotide code"),
    (b"@\nACGT\n+\nIIII\n", "record 1 has an empty header line"),
])
def test_errors_are_one_line_naming_file_and_record(tmp_path: Path, data: bytes, message: str) -> None:
    for name, payload in (("bad.fq", data), ("bad.fq.gz", gzip.compress(data))):
        path = write(tmp_path, name, payload)
        with pytest.raises(InputError) as info:
            list(read_fasta(path))
        text = str(info.value)
        assert message in text and str(path) in text and "\n" not in text


def test_stems_of_fastq_names() -> None:
    assert input_stem("run/reads.fastq.gz") == "reads"
    assert input_stem("R1.fq") == "R1"


@settings(max_examples=60, deadline=None)
@given(reads=st.lists(st.text("ACGTN", min_size=0, max_size=300), min_size=1, max_size=8),
       width=st.integers(min_value=0, max_value=50), block=st.integers(min_value=1, max_value=64))
def test_same_records_as_fasta(tmp_path_factory, reads: list[str], width: int, block: int) -> None:
    """Any reads, as FASTQ (4-line or wrapped at ``width``) or FASTA, give the same records;
    the FASTQ parser gives them whatever the read blocks."""
    tmp = tmp_path_factory.mktemp("fq")

    def wrap(seq: str) -> str:
        if not width or not seq:
            return seq + "\n"
        return "".join(seq[i:i + width] + "\n" for i in range(0, len(seq), width))

    fasta = "".join(f">r{i} d\n{s}\n" for i, s in enumerate(reads))
    fastq = "".join(f"@r{i} d\n{wrap(s)}+\n{wrap('I' * len(s))}" for i, s in enumerate(reads)).encode()
    assert records(write(tmp, "a.fa", fasta.encode())) == records(write(tmp, "b.fq", fastq))
    blocks = iter([fastq[i:i + block] for i in range(block, len(fastq), block)])
    parsed = list(parse_fastq(fastq[:block], lambda: next(blocks, b""), "x"))
    assert [(n, t.decode(), s.decode()) for n, t, s in parsed] == [
        (i + 1, f"r{i} d", s) for i, s in enumerate(reads)]
