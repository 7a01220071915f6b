"""``virnucpro split``: contiguous, balanced, never cutting a record, deterministic, streaming stdin."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import pytest

from tests.conftest import TINY_REF, read_small_fasta, run_cli

INPUT = TINY_REF / "contigs.fa"


def split(input_path: Path | str, n: int, out: Path, stdin: bytes | None = None):
    result = run_cli("split", str(input_path), "-n", str(n), "-o", str(out), input=stdin)
    assert result.returncode == 0, result.stderr.decode()
    return json.loads((out / "manifest.json").read_text())


def part_records(out: Path, name: str) -> tuple[list[str], list[str]]:
    plain = out / (name + ".plain")
    plain.write_bytes(gzip.decompress((out / name).read_bytes()))
    return read_small_fasta(plain)


@pytest.mark.parametrize("n", [1, 2, 3, 7])
def test_parts_are_the_input_in_order_and_balanced(tmp_path, n):
    manifest = split(INPUT, n, tmp_path / "parts")
    ids, seqs = read_small_fasta(INPUT)
    assert manifest["input_sha256"] == hashlib.sha256(INPUT.read_bytes()).hexdigest()
    assert manifest["input_size"] == INPUT.stat().st_size
    assert [p["file"] for p in manifest["parts"]] == [f"part-{i:04d}.fa.gz" for i in range(1, n + 1)]
    got_ids: list[str] = []
    got_seqs: list[str] = []
    for part in manifest["parts"]:
        path = tmp_path / "parts" / part["file"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == part["sha256"]
        p_ids, p_seqs = part_records(tmp_path / "parts", part["file"])
        assert (len(p_ids), sum(map(len, p_seqs))) == (part["records"], part["bases"])
        got_ids += p_ids
        got_seqs += p_seqs
    assert got_ids == ids and got_seqs == seqs  # contiguous, in order, no record cut or lost
    total, largest = sum(map(len, seqs)), max(map(len, seqs))
    for part in manifest["parts"]:
        assert abs(part["bases"] - total / n) <= largest  # within one record of an even share


def test_same_input_and_n_give_identical_bytes_also_from_stdin(tmp_path):
    first = split(INPUT, 3, tmp_path / "a")
    second = split(INPUT, 3, tmp_path / "b")
    piped = split("-", 3, tmp_path / "c", stdin=INPUT.read_bytes())
    assert first == second
    assert piped["parts"] == first["parts"] and piped["input_sha256"] == first["input_sha256"]
    for part in first["parts"]:
        data = (tmp_path / "a" / part["file"]).read_bytes()
        assert data == (tmp_path / "b" / part["file"]).read_bytes() == (tmp_path / "c" / part["file"]).read_bytes()
        assert data[4:8] == b"\0\0\0\0"  # gzip mtime 0
        assert not data[3] & 0x08  # no file name in the gzip header
    assert not (tmp_path / "c" / ".stdin-spool").exists()


def test_more_parts_than_records_gives_empty_parts(tmp_path):
    fasta = tmp_path / "three.fa"
    fasta.write_text(">a\nACGTACGTAA\n>b\nACGT\n>c desc\nACGTACGTACGTAAAA\n")
    manifest = split(fasta, 7, tmp_path / "parts")
    assert [p["records"] for p in manifest["parts"]].count(0) == 4
    assert sum(p["records"] for p in manifest["parts"]) == 3
    empty = next(p for p in manifest["parts"] if p["records"] == 0)
    assert gzip.decompress((tmp_path / "parts" / empty["file"]).read_bytes()) == b""
    # Headers are kept whole (the ID is still the first word).
    texts = [gzip.decompress((tmp_path / "parts" / p["file"]).read_bytes()) for p in manifest["parts"]]
    assert b">c desc\nACGTACGTACGTAAAA\n" in texts


def test_one_huge_record_only_enlarges_its_own_part(tmp_path):
    fasta = tmp_path / "skewed.fa"
    fasta.write_text(">big\n" + "ACGT" * 2500 + "\n" + "".join(f">s{i}\nACGTACGTAC\n" for i in range(20)))
    manifest = split(fasta, 4, tmp_path / "parts")
    records = [p["records"] for p in manifest["parts"]]
    assert manifest["parts"][0]["records"] == 1 and manifest["parts"][0]["bases"] == 10_000
    assert sorted(records[1:]) == [6, 7, 7]  # the other parts share the rest evenly


def test_all_empty_records_are_balanced_by_count(tmp_path):
    fasta = tmp_path / "empties.fa"
    fasta.write_text("".join(f">e{i}\n" for i in range(6)))
    manifest = split(fasta, 3, tmp_path / "parts")
    assert [p["records"] for p in manifest["parts"]] == [2, 2, 2]
    assert manifest["balanced_by"] == "records"


def test_a_matching_manifest_means_nothing_is_rewritten_and_stale_parts_go(tmp_path):
    out = tmp_path / "parts"
    split(INPUT, 5, out)
    split(INPUT, 3, out)
    assert sorted(p.name for p in out.glob("part-*")) == [f"part-{i:04d}.fa.gz" for i in (1, 2, 3)]
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    result = run_cli("split", str(INPUT), "-n", "3", "-o", str(out))
    assert result.returncode == 0 and b"nothing to do" in result.stderr
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == mtimes


def test_compressed_input_gives_the_same_parts(tmp_path):
    packed = tmp_path / "contigs.fa.gz"
    packed.write_bytes(gzip.compress(INPUT.read_bytes()))
    a, b = split(INPUT, 2, tmp_path / "a"), split(packed, 2, tmp_path / "b")
    assert a["parts"] == b["parts"] and a["input_sha256"] != b["input_sha256"]


def test_fastq_input_gives_the_parts_of_the_same_reads_as_fasta(tmp_path):
    records = list(zip(*read_small_fasta(INPUT)))
    fastq = tmp_path / "reads.fq.gz"
    fastq.write_bytes(gzip.compress("".join(f"@{rid} a read\n{seq}\n+\n{'I' * len(seq)}\n"
                                            for rid, seq in records).encode()))
    a, b = split(INPUT, 2, tmp_path / "a"), split(fastq, 2, tmp_path / "b")
    assert len(a["parts"]) == len(b["parts"]) == 2
    for part_a, part_b in zip(a["parts"], b["parts"]):  # FASTA parts holding the same reads
        assert part_records(tmp_path / "a", part_a["file"]) == part_records(tmp_path / "b", part_b["file"])

@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "no such file"), (b"", "empty"), (b"@r1\nACGT\n+\nII\n", "FASTQ record 1 is truncated"),
     (b">a\nACGT\n>a\nACGT\n", "duplicate record ID 'a'")],
)
def test_bad_input_is_one_line(tmp_path, content, message):
    fasta = tmp_path / "in.fa"
    if content is not None:
        fasta.write_bytes(content)
    result = run_cli("split", str(fasta), "-n", "2", "-o", str(tmp_path / "parts"))
    err = result.stderr.decode().strip().splitlines()
    assert result.returncode == 3, err
    assert err[-1].startswith("virnucpro: error:") and message in err[-1] and "in.fa" in err[-1]
    assert "Traceback" not in result.stderr.decode()
    assert not (tmp_path / "parts" / "manifest.json").exists()
