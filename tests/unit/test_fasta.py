"""The streaming FASTA reader and writer: formats, compression sniffing, validation."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from virnucpro.errors import InputError
from virnucpro.io.fasta import (
    FastaRecord,
    FastaWriter,
    input_stem,
    is_stream,
    read_fasta,
    read_fasta_bytes,
    sniff_compression,
    write_fasta,
)

SAMPLE = b">r1 first record\nACGTACGT\nacgtNN\n>r2\nTTTT\n"
EXPECTED = [("r1", "ACGTACGTacgtNN"), ("r2", "TTTT")]


def records(path: Path | str) -> list[tuple[str, str]]:
    return [(r.id, r.sequence) for r in read_fasta(path)]


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("compress", "name"),
    [
        (gzip.compress, "x.fa"),  # compressed, name says plain
        (bz2.compress, "x.fa.gz"),  # bzip2, name says gzip
        (lzma.compress, "x.txt"),
        (lambda d: d, "x.fa.xz"),  # plain, name says xz
    ],
)
def test_compression_is_sniffed_from_bytes_not_name(tmp_path: Path, compress, name: str) -> None:
    assert records(write(tmp_path, name, compress(SAMPLE))) == EXPECTED


def test_sniff_compression() -> None:
    assert sniff_compression(gzip.compress(b"x")) == "gzip"
    assert sniff_compression(bz2.compress(b"x")) == "bzip2"
    assert sniff_compression(lzma.compress(b"x")) == "xz"
    assert sniff_compression(b">r1\nACGT\n") is None


def test_multi_member_gzip(tmp_path: Path) -> None:
    data = gzip.compress(b">a\nAC\n") + gzip.compress(b"GT\n>b\nTT\n")
    assert records(write(tmp_path, "m.gz", data)) == [("a", "ACGT"), ("b", "TT")]


def test_crlf_blank_lines_and_spaces(tmp_path: Path) -> None:
    data = b"\r\n\n>r1 first\r\nACGT\r\n\r\nAC GT\t\r\n\n>r2\r\nTT\r\n"
    assert records(write(tmp_path, "crlf.fa", data)) == [("r1", "ACGTACGT"), ("r2", "TT")]


def test_header_beyond_first_token_is_ignored(tmp_path: Path) -> None:
    data = b">  id-1\tsome text len=5 >x\nACGTA\n>id_2|x|y description\nCC\n"
    got = list(read_fasta(write(tmp_path, "h.fa", data)))
    assert [r.id for r in got] == ["id-1", "id_2|x|y"]
    assert got[0].description == "  id-1\tsome text len=5 >x"  # as Biopython: rstrip only


def test_greater_than_inside_a_line_is_not_a_header(tmp_path: Path) -> None:
    path = write(tmp_path, "g.fa", b">a\nAC>GT\n>b\nT\n")
    assert [(r.id, r.sequence) for r in read_fasta(path, expect_dna=False)] == [("a", "AC>GT"), ("b", "T")]
    with pytest.raises(InputError, match="record 'a': '>' at position 3 is not a nucleotide code"):
        list(read_fasta(path))


def test_no_trailing_newline_and_empty_record(tmp_path: Path) -> None:
    data = b">a\n>b\nACG\n>c"
    assert records(write(tmp_path, "e.fa", data)) == [("a", ""), ("b", "ACG"), ("c", "")]


def test_non_ascii_header_round_trips(tmp_path: Path) -> None:
    path = write(tmp_path, "u.fa", ">séq1 naïve\nACGT\n".encode() + b">lat\xe91\nAC\n")
    got = list(read_fasta_bytes(path))
    assert got[0].id == "séq1"
    out = tmp_path / "out.fa"
    with open(out, "wb") as handle:
        writer = FastaWriter(handle)
        for rec in got:
            writer.write(rec.id, rec.sequence)
    assert out.read_bytes() == ">séq1\nACGT\n".encode() + b">lat\xe91\nAC\n"


def test_record_larger_than_read_block(tmp_path: Path) -> None:
    seq = b"ACGT" * 700_000  # 2.8 Mbp, several 1 MiB read blocks, wrapped at 60
    wrapped = b"\n".join(seq[i : i + 60] for i in range(0, len(seq), 60))
    path = write(tmp_path, "big.fa", b">big\n" + wrapped + b"\n>small\nAC\n")
    got = list(read_fasta_bytes(path))
    assert [(r.id, len(r.sequence)) for r in got] == [("big", len(seq)), ("small", 2)]
    assert got[0].sequence == seq


def test_stdin_is_read_as_bytes() -> None:
    code = (
        "from virnucpro.io.fasta import read_fasta\n"
        "print([(r.id, r.sequence) for r in read_fasta('-')])"
    )
    for data in (SAMPLE, gzip.compress(SAMPLE)):
        proc = subprocess.run(
            [sys.executable, "-c", code], input=data, capture_output=True, cwd=REPO_ROOT, check=True
        )
        assert proc.stdout.decode().strip() == repr(EXPECTED)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "is empty"),
        (b"\n\n  \n", "empty"),
        (b"@r1\nACGT\n+\nII\n", "FASTQ record 1 is truncated"),
        (b"hello world\nthis is text\n", "no FASTA records"),
        (bytes(range(256)) * 10, "binary"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
        (b"PK\x03\x04rest", "ZIP"),
        (b">a\nACGT\n>b\nAC\n>a\nGG\n", "duplicate record ID 'a'"),
        (b">p1\nMKVLAAGIVGLLLAQSPEEWRRFKDLE\n", "protein"),
        (b">\nACGT\n", "no ID"),
        (b">a\n" + b"ACGT" * 100 + b"\x01GT\n", "non-text"),
        (b">a\nAC\x01GT\n", "binary"),
        (b">a\nAC\xc3\xa9GT\n", "non-text"),
    ],
)
def test_input_errors(tmp_path: Path, data: bytes, message: str) -> None:
    path = write(tmp_path, "bad.fa", data)
    with pytest.raises(InputError) as info:
        list(read_fasta(path))
    text = str(info.value)
    assert message in text
    assert str(path) in text
    assert "\n" not in text


@pytest.mark.parametrize(
    "truncate", [lambda d: d[: len(d) // 2], lambda d: d[:-6]], ids=["half", "no-trailer"]
)
@pytest.mark.parametrize("compress", [gzip.compress, bz2.compress, lzma.compress])
def test_truncated_compressed_file(tmp_path: Path, compress, truncate) -> None:
    data = compress(b">r1\n" + b"ACGTTGCA" * 20_000 + b"\n")
    path = write(tmp_path, "t.fa", truncate(data))
    with pytest.raises(InputError, match="truncated or corrupt"):
        list(read_fasta(path))


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        read_fasta(tmp_path / "nope.fa")
    with pytest.raises(InputError, match="is a directory"):
        read_fasta(tmp_path)


def test_dna_rule_accepts_n_and_iupac(tmp_path: Path) -> None:
    data = b">n\nNNNNNNNNNNNNNNNN\n>iupac\nRYKMSWBDHV\n>b\nB\n>short\nA\n>pep\nMKV\n>low\nryswkmbdhvn\n"
    path = write(tmp_path, "n.fa", data)
    assert records(path) == [
        ("n", "N" * 16), ("iupac", "RYKMSWBDHV"), ("b", "B"), ("short", "A"), ("pep", "MKV"), ("low", "ryswkmbdhvn"),
    ]


@pytest.mark.parametrize("seq", [b"L", b"MKVLAAG", b"acgtEFILPQ"])
def test_dna_rule_rejects_protein_letters(tmp_path: Path, seq: bytes) -> None:
    with pytest.raises(InputError, match="record 'p' looks like a protein"):
        list(read_fasta(write(tmp_path, "p.fa", b">ok\nACGT\n>p\n" + seq + b"\n")))


def test_dna_rule_a_minority_of_protein_letters_is_not_protein(tmp_path: Path) -> None:
    """Below the protein threshold, the first non-nucleotide letter is named instead."""
    with pytest.raises(InputError) as info:
        list(read_fasta(write(tmp_path, "m.fa", b">m\nACGTACGTLQ\n")))
    assert str(info.value) == (
        f"{tmp_path / 'm.fa'}: record 'm': 'L' at position 9 is not a nucleotide code "
        "(accepted: IUPAC codes ACGTUNRYSWKMBDHV, either case)"
    )


def test_protein_allowed_when_not_expecting_dna(tmp_path: Path) -> None:
    path = write(tmp_path, "p.faa", b">p1\nMKVLAAGIVGLLLAQSPEEW\n")
    assert [r.id for r in read_fasta(path, expect_dna=False)] == ["p1"]


def test_duplicate_found_late_in_file(tmp_path: Path) -> None:
    data = b"".join(b">r%d\nACGT\n" % i for i in range(5000)) + b">r17\nAC\n"
    reader = read_fasta(write(tmp_path, "late.fa", data))
    with pytest.raises(InputError, match="'r17' .records 18 and 5001."):
        for _ in reader:
            pass


@pytest.mark.parametrize(
    ("name", "stem"),
    [
        ("contigs.fa", "contigs"),
        ("dir/contigs.fasta.gz", "contigs"),
        ("x.FNA.BZ2", "x"),
        ("sample.v2.fa.xz", "sample.v2"),
        ("genes.ffn", "genes"),
        ("reads.txt", "reads.txt"),
        ("noext", "noext"),
        (".fa", ".fa"),
        ("-", "stdin"),
    ],
)
def test_input_stem(name: str, stem: str) -> None:
    assert input_stem(name) == stem


def test_write_fasta_wrapping(tmp_path: Path) -> None:
    path = tmp_path / "w.fa"
    count = write_fasta(path, [FastaRecord("a", "ACGTACGTAC"), FastaRecord("b", "AC")], line_width=4)
    assert count == 2
    assert path.read_text() == ">a\nACGT\nACGT\nAC\n>b\nAC\n"
    buffer = io.BytesIO()
    FastaWriter(buffer).write("c", b"ACGTACGT")
    assert buffer.getvalue() == b">c\nACGTACGT\n"


def test_single_protein_only_letter_counts_as_protein(tmp_path):
    """Regression: the letter Q used to be deleted from the sample (its class byte is 'Q')."""
    from virnucpro.errors import InputError
    from virnucpro.io.fasta import read_fasta

    path = tmp_path / "q.fa"
    path.write_text(">rec0\nQ\n")
    with pytest.raises(InputError, match="looks like a protein"):
        list(read_fasta(path))


@pytest.mark.parametrize(
    ("seq", "char", "position"),
    [
        (b"ACGTX", "'X'", 5),
        (b"XXXXXXXX", "'X'", 1),
        (b"acgt1acgt", "'1'", 5),
        (b"ACGTACGT*", "'*'", 9),
        (b"ACGT\nAC GTe\n", "'e'", 9),  # position in the sequence, line breaks and spaces removed
        (b"A" * 5000 + b"Z", "'Z'", 5001),  # beyond the protein rule's sample
        (b"A" * 3000 + b"\x01", "'\\x01'", 3001),
    ],
)
def test_non_nucleotide_character_is_named_with_its_position(
    tmp_path: Path, seq: bytes, char: str, position: int
) -> None:
    path = write(tmp_path, "c.fa", b">ok\nACGT\n>bad desc\n" + seq + b"\n>later\nAC\n")
    with pytest.raises(InputError) as info:
        list(read_fasta(path))
    assert str(info.value) == (
        f"{path}: record 'bad': {char} at position {position} is not a nucleotide code "
        "(accepted: IUPAC codes ACGTUNRYSWKMBDHV, either case)"
    )


@pytest.mark.parametrize(("seq", "char", "position"), [(b"ACG-T", "-", 4), (b"...ACGT", ".", 1)])
def test_alignment_gaps_get_their_own_hint(tmp_path: Path, seq: bytes, char: str, position: int) -> None:
    path = write(tmp_path, "aln.fa", b">a1\n" + seq + b"\n")
    with pytest.raises(InputError) as info:
        list(read_fasta(path))
    assert str(info.value) == (
        f"{path}: record 'a1': '{char}' at position {position}: alignment gap characters are not "
        "allowed: remove them (e.g. seqkit seq -g)"
    )


def test_protein_message_is_unchanged_for_protein_with_stop_and_x(tmp_path: Path) -> None:
    path = write(tmp_path, "p.fa", b">p1\nMKVLAAGIVGLLLAQSPEEWXRFKDLE*\n")
    with pytest.raises(InputError, match=r"record 'p1' looks like a protein sequence \(\d+% of its letters"):
        list(read_fasta(path))


def test_rna_is_read_as_dna_and_counted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path, "rna.fa", b">r1\nACGUUGCA\n>d\nACGT\n>r2\nacguNNu\n")
    with caplog.at_level("WARNING", logger="virnucpro"):
        reader = read_fasta_bytes(path)
        got = [(r.id, r.sequence) for r in reader]
    assert got == [("r1", b"ACGTTGCA"), ("d", b"ACGT"), ("r2", b"acgtNNt")]
    assert (reader.stats.records, reader.stats.rna_records, reader.stats.rna_ids) == (3, 2, ["r1", "r2"])
    rna_lines = [r.getMessage() for r in caplog.records if "RNA" in r.getMessage()]
    assert rna_lines == [f"{path}: record 'r1' is RNA (holds U): U is read as T in it and in every later RNA record"]


def test_protein_reading_keeps_every_character(tmp_path: Path) -> None:
    path = write(tmp_path, "p.faa", b">p1\nMKVU*X-\n")
    assert [(r.id, r.sequence) for r in read_fasta(path, expect_dna=False)] == [("p1", "MKVU*X-")]


def test_named_pipe_is_read_as_a_stream(tmp_path: Path) -> None:
    """A FIFO cannot seek: compression is sniffed without rewinding (gzip through a real pipe)."""
    import os
    import threading

    fifo = tmp_path / "in.fa"
    os.mkfifo(fifo)
    data = gzip.compress(SAMPLE * 1 + b">big\n" + b"ACGT" * 500_000 + b"\n")

    def feed() -> None:
        with open(fifo, "wb") as handle:
            for i in range(0, len(data), 4096):
                handle.write(data[i : i + 4096])

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    assert is_stream(fifo)
    with read_fasta_bytes(fifo) as reader:
        assert reader.compression == "gzip"
        got = [(r.id, len(r.sequence)) for r in reader]
    writer.join(timeout=30)
    assert got == [("r1", 14), ("r2", 4), ("big", 2_000_000)]


def test_is_stream(tmp_path: Path) -> None:
    import os

    regular = write(tmp_path, "x.fa", SAMPLE)
    (tmp_path / "link.fa").symlink_to(regular)
    os.mkfifo(tmp_path / "pipe")
    assert is_stream("-") and is_stream(tmp_path / "pipe") and is_stream("/dev/null")
    assert not is_stream(regular) and not is_stream(tmp_path / "link.fa")
    assert not is_stream(tmp_path / "missing.fa") and not is_stream(tmp_path)
    read_end, write_end = os.pipe()
    try:
        assert is_stream(f"/dev/fd/{read_end}")
    finally:
        os.close(read_end)
        os.close(write_end)


@pytest.mark.parametrize("path", ["/dev/fd/63", "/proc/self/fd/11"])
def test_input_stem_of_a_descriptor_path(path: str) -> None:
    assert input_stem(path) == "stream"


@pytest.mark.parametrize("path", ["-", "/dev/stdin"])
def test_closed_stdin_is_one_input_error(path: str) -> None:
    code = (
        "import sys\nfrom virnucpro.errors import InputError\nfrom virnucpro.io.fasta import read_fasta\n"
        f"try:\n    read_fasta({path!r})\nexcept InputError as exc:\n    print(exc)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], stdin=subprocess.DEVNULL, capture_output=True, cwd=REPO_ROOT,
        check=True, preexec_fn=lambda: __import__("os").close(0),
    )
    shown = "<stdin>" if path == "-" else path
    assert proc.stdout.decode().strip() == f"{shown}: standard input is closed; give an input file, or pipe data in"


def test_check_stream_open_without_reading() -> None:
    code = (
        "from virnucpro.errors import InputError\nfrom virnucpro.io.fasta import check_stream_open\n"
        "check_stream_open('/no/such/file.fa')\n"
        "try:\n    check_stream_open('-')\nexcept InputError as exc:\n    print(exc)\nelse:\n    print('open')\n"
    )
    for close in (True, False):
        proc = subprocess.run(
            [sys.executable, "-c", code], input=b">a\nAC\n", capture_output=True, cwd=REPO_ROOT, check=True,
            preexec_fn=(lambda: __import__("os").close(0)) if close else None,
        )
        expected = "<stdin>: standard input is closed; give an input file, or pipe data in" if close else "open"
        assert proc.stdout.decode().strip() == expected
