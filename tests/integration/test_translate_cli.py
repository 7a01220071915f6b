"""``virnucpro translate`` in a subprocess: happy paths and every input error."""

from __future__ import annotations

import bz2
import gzip
import os
from pathlib import Path

import pytest

from tests.conftest import run_cli

OUT_NAMES = ["contigs_chunked500.fa", "contigs_identified_nucleotide.fa", "contigs_identified_protein.faa"]


def files_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def test_happy_path(tmp_path: Path, tiny_ref: Path) -> None:
    out = tmp_path / "res"
    proc = run_cli("translate", str(tiny_ref / "contigs.fa"), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert files_in(out) == sorted(OUT_NAMES)
    for name in OUT_NAMES[1:]:
        assert (out / name).read_bytes() == (tiny_ref / "expected" / name).read_bytes()
    summary = proc.stderr.decode()
    assert "160 records (0 empty skipped)" in summary
    assert "432 chunks" in summary and "433 kept frames" in summary


def test_stdin_compressed_and_chunk_length(tmp_path: Path, tiny_ref: Path) -> None:
    data = (tiny_ref / "contigs.fa").read_bytes()
    proc = run_cli("translate", "-", "-o", str(tmp_path / "a"), "-c", "300", input=gzip.compress(data))
    assert proc.returncode == 0, proc.stderr
    assert files_in(tmp_path / "a") == [
        "stdin_chunked300.fa", "stdin_identified_nucleotide.fa", "stdin_identified_protein.faa"
    ]
    source = tmp_path / "contigs.fasta.bz2"
    source.write_bytes(bz2.compress(data))
    proc = run_cli("translate", str(source), "-o", str(tmp_path / "b"), "--chunk-length", "300")
    assert proc.returncode == 0, proc.stderr
    for name in ("chunked300.fa", "identified_nucleotide.fa", "identified_protein.faa"):
        ours = (tmp_path / "b" / f"contigs_{name}").read_bytes()
        assert ours == (tmp_path / "a" / f"stdin_{name}").read_bytes()


def test_empty_record_warning(tmp_path: Path) -> None:
    source = tmp_path / "e.fa"
    source.write_text(">empty1 nothing here\n>full\nATGAAACCCGGGTTT\n>empty2\n")
    proc = run_cli("translate", str(source), "-o", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    err = proc.stderr.decode()
    assert "record 'empty1' has an empty sequence; skipped" in err
    assert "record 'empty2' has an empty sequence; skipped" in err
    assert "3 records (2 empty skipped)" in err


def test_chunk_length_below_three_is_a_usage_error(tmp_path: Path, tiny_ref: Path) -> None:
    proc = run_cli("translate", str(tiny_ref / "contigs.fa"), "-o", str(tmp_path / "o"), "-c", "2")
    assert proc.returncode == 2
    assert files_in(tmp_path / "o") == []


def _loop(tmp_path: Path) -> Path:
    link = tmp_path / "loop.fa"
    link.symlink_to(tmp_path / "loop.fa")
    return link


def _chmod_000(tmp_path: Path) -> Path:
    path = tmp_path / "secret.fa"
    path.write_text(">a\nACGT\n")
    path.chmod(0)
    try:
        with open(path, "rb"):
            pytest.skip("running as root: chmod 000 does not make a file unreadable")
    except PermissionError:
        pass
    return path


def _write(name: str, data: bytes):
    def make(tmp_path: Path) -> Path:
        path = tmp_path / name
        path.write_bytes(data)
        return path

    return make


_LONG = b">r1\n" + b"ACGTTGCAAC" * 30_000 + b"\n"
ERROR_CASES = {
    "missing": (lambda tmp: tmp / "missing.fa", "no such file"),
    "directory": (lambda tmp: (tmp / "adir.fa").mkdir() or tmp / "adir.fa", "is a directory"),
    "symlink-loop": (_loop, "cannot read"),
    "chmod-000": (_chmod_000, "permission denied"),
    "empty": (_write("empty.fa", b""), "empty"),
    "blank-lines-only": (_write("blank.fa", b"\n\n\r\n"), "empty"),
    "no-records": (_write("text.fa", b"just some text\nno header\n"), "no FASTA records"),
    "truncated-fastq": (_write("reads.fq", b"@r1\nACGT\n+\nIIII\n@r2\nAC\n"), "FASTQ record 2 is truncated"),
    "binary": (_write("blob.fa", bytes(range(256)) * 64), "binary"),
    "truncated-gzip": (_write("cut.fa.gz", gzip.compress(_LONG)[:200]), "truncated or corrupt gzip"),
    "truncated-gzip-trailer": (_write("cut2.fa", gzip.compress(_LONG)[:-4]), "truncated or corrupt gzip"),
    "duplicate-ids": (
        _write("dup.fa", b"".join(b">c%d\nACGTACGT\n" % i for i in range(2000)) + b">c7 again\nAC\n"),
        "duplicate record ID 'c7'",
    ),
    "protein": (_write("prot.fa", b">p1\nMKVLAAGIVGLLLAQSPEEWRRFKDLEGHIKLM\n"), "looks like a protein"),
    "x-character": (
        _write("x.fa", b">ok\nACGT\n>c2 desc\nACGTNNXACGT\n"),
        "record 'c2': 'X' at position 7 is not a nucleotide code",
    ),
    "digit-far-in": (_write("d.fa", b">r1\n" + b"ACGT" * 400_000 + b"7\n"), "'7' at position 1600001"),
    "alignment-gaps": (
        _write("aln.fa", b">s1\nAC--GT\n"),
        "'-' at position 3: alignment gap characters are not allowed: remove them (e.g. seqkit seq -g)",
    ),
}


@pytest.mark.parametrize("case", sorted(ERROR_CASES))
def test_input_errors(tmp_path: Path, case: str) -> None:
    make, message = ERROR_CASES[case]
    source = make(tmp_path)
    out = tmp_path / "out"
    proc = run_cli("translate", str(source), "-o", str(out))
    err = proc.stderr.decode()
    assert proc.returncode == 3, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"virnucpro: error: {source}")
    assert message in lines[0]
    assert "Traceback" not in err
    assert files_in(out) == []
    assert proc.stdout == b""


def test_error_keeps_an_existing_output_dir_clean(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    source = tmp_path / "dup.fa"
    source.write_bytes(b">a\nACGTACGTAAA\n>a\nAC\n")
    proc = run_cli("translate", str(source), "-o", str(out))
    assert proc.returncode == 3
    assert files_in(out) == []
    assert out.is_dir()
    assert not any(name.endswith(".tmp") for name in os.listdir(out))
