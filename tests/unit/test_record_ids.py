"""Duplicate record IDs by 64-bit hashes with an exact second look (virnucpro.io.record_ids)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from virnucpro.errors import InputError
from virnucpro.io import record_ids
from virnucpro.io.fasta import read_fasta_bytes
from virnucpro.io.record_ids import DuplicateIds


def _first_repeat(record_ids: list[str]) -> tuple[str, int, int] | None:
    """What a set of the IDs finds: the first repeated ID and its two record numbers."""
    seen: dict[str, int] = {}
    for number, record_id in enumerate(record_ids, 1):
        if record_id in seen:
            return record_id, seen[record_id], number
        seen[record_id] = number
    return None


def _run(record_ids: list[str], *, bits: int, batch: int, spool: bool, max_run: int = 1 << 21) -> str | None:
    finder = DuplicateIds("in.fa", None if spool else (lambda n: iter(record_ids[:n])), hash_bits=bits,
                          batch=batch, max_run=max_run)
    try:
        for record_id in record_ids:
            finder.add(record_id)
        finder.finish()
    except InputError as exc:
        return str(exc)
    finally:
        finder.close()
    return None


_IDS = st.lists(st.text(alphabet="abcxyz_.|0123456789é", min_size=1, max_size=4), max_size=120)


@settings(max_examples=300, deadline=None)
@given(record_ids=_IDS, bits=st.sampled_from([1, 2, 3, 8, 64]), batch=st.integers(1, 40), spool=st.booleans(),
       max_run=st.sampled_from([1, 7, 1 << 21]))
def test_same_answer_as_a_set_whatever_the_collisions(record_ids: list[str], bits: int, batch: int,
                                                       spool: bool, max_run: int) -> None:
    # 1-3 bit hashes make nearly every pair collide: only the exact second look tells them apart.
    expected = _first_repeat(record_ids)
    got = _run(record_ids, bits=bits, batch=batch, spool=spool, max_run=max_run)
    if expected is None:
        assert got is None
    else:
        record_id, first, second = expected
        assert got == f"in.fa: duplicate record ID '{record_id}' (records {first} and {second})"


def test_holds_eight_bytes_per_record() -> None:
    names = [f"read{k}" for k in range(100_000)]
    finder = DuplicateIds("x", lambda n: iter(names[:n]), batch=1000, max_run=4096)
    for name in names:
        finder.add(name)
    finder.finish()
    assert finder.checked == 100_000
    assert finder.memory_bytes() == 8 * 100_000
    finder.add("read77")  # capped runs (25 of them) still find a repeat
    with pytest.raises(InputError, match=r"'read77' \(records 78 and 100001\)"):
        finder.finish()


@pytest.mark.parametrize("bits", [2, 64])
def test_reader_refuses_a_duplicate_in_a_file_and_in_a_pipe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            bits: int) -> None:
    monkeypatch.setattr(record_ids, "HASH_BITS", bits)
    data = b"".join(b">r%d desc\nACGT\n" % i for i in range(20_000)) + b">r17\nAC\n"
    path = tmp_path / "dup.fa"
    path.write_bytes(data)
    with pytest.raises(InputError, match=r"dup.fa: duplicate record ID 'r17' \(records 18 and 20001\)"):
        for _ in read_fasta_bytes(path):
            pass
    distinct = tmp_path / "ok.fa"
    distinct.write_bytes(data.rsplit(b">r17\n", 1)[0])
    assert sum(1 for _ in read_fasta_bytes(distinct)) == 20_000


def test_stream_spools_ids_for_the_second_look(tmp_path: Path) -> None:
    # A pipe cannot be read twice: the colliding IDs come back from the spool file.
    data = b"".join(b">r%d\nACGT\n" % i for i in range(3000)) + b">r2999\nA\n"
    code = ("import sys\nfrom virnucpro.io import record_ids\nrecord_ids.HASH_BITS = 3\n"
            "from virnucpro.io.fasta import read_fasta_bytes\n"
            "from virnucpro.errors import InputError\n"
            "try:\n    n = sum(1 for _ in read_fasta_bytes('-'))\nexcept InputError as e:\n    print(e)\n"
            "else:\n    print(n)\n")
    proc = subprocess.run([sys.executable, "-c", code], input=data, capture_output=True, check=True)
    assert proc.stdout.decode().strip() == "<stdin>: duplicate record ID 'r2999' (records 3000 and 3001)"
    proc = subprocess.run([sys.executable, "-c", code], input=data.rsplit(b">r2999\nA", 1)[0], capture_output=True,
                          check=True)
    assert proc.stdout.decode().strip() == "3000"
