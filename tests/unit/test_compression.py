"""Compressed input and output: zstd input (frames, truncation, pipes), gzip read and written by
isal or by the standard library with the same decompressed bytes, split's parts either way."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from virnucpro.cluster.split import split_fasta
from virnucpro.errors import InputError
from virnucpro.io.fasta import input_stem, read_fasta_bytes, sniff_compression
from virnucpro.io.fasta_open import gzip_module

zstandard = pytest.importorskip("zstandard")
isal = pytest.importorskip("isal.igzip")


def _fasta(n: int = 400, seed: int = 7) -> tuple[bytes, list[tuple[str, bytes]]]:
    rng = random.Random(seed)
    records = [(f"r{i}", "".join(rng.choice("ACGT") for _ in range(rng.randint(1, 3000))).encode()) for i in range(n)]
    text = b"".join(b">" + name.encode() + b" some description\n" + seq + b"\n" for name, seq in records)
    return text, records


def _read(path: Path | str) -> list[tuple[str, bytes]]:
    with read_fasta_bytes(path) as reader:
        return [(r.id, r.sequence) for r in reader]


# --- zstd input -------------------------------------------------------------


def test_zstd_input_one_frame_and_several(tmp_path):
    text, records = _fasta()
    one = tmp_path / "one.fa.zst"
    one.write_bytes(zstandard.ZstdCompressor(level=3).compress(text))
    several = tmp_path / "several.fa.zst"  # `cat a.zst b.zst`, each frame its own compressor
    cut = len(text) // 3
    several.write_bytes(zstandard.ZstdCompressor(level=1).compress(text[:cut])
                        + zstandard.ZstdCompressor(level=19).compress(text[cut:]))
    assert _read(one) == records
    assert _read(several) == records
    with read_fasta_bytes(one) as reader:
        assert reader.compression == "zstd"
    assert sniff_compression(one.read_bytes()[:8]) == "zstd"
    assert input_stem("run/sample.fa.zst") == input_stem("run/sample.fastq.zstd") == "sample"


def test_zstd_streamed_frame_without_content_size(tmp_path):
    text, records = _fasta(50)
    path = tmp_path / "streamed.zst"
    with path.open("wb") as out, zstandard.ZstdCompressor().stream_writer(out, closefd=False) as writer:
        for i in range(0, len(text), 1000):
            writer.write(text[i: i + 1000])
    assert _read(path) == records


@pytest.mark.parametrize("cut", [lambda d: d[: len(d) // 2], lambda d: d[:-3]], ids=["half", "last-bytes"])
def test_truncated_zstd_is_reported_not_read_short(tmp_path, cut):
    text, _ = _fasta()
    path = tmp_path / "t.fa.zst"
    path.write_bytes(cut(zstandard.ZstdCompressor().compress(text)))
    with pytest.raises(InputError) as info:
        _read(path)
    assert "truncated or corrupt zstd" in str(info.value) and str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_corrupt_zstd_is_one_line(tmp_path):
    text, _ = _fasta()
    # with the content checksum the zstd command line writes by default (without one, a flipped
    # literal byte decodes to another byte: no reader can tell)
    data = bytearray(zstandard.ZstdCompressor(write_checksum=True).compress(text))
    data[len(data) // 2] ^= 0xFF
    path = tmp_path / "c.fa.zst"
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match="truncated or corrupt zstd"):
        _read(path)


def test_zstd_through_a_pipe(tmp_path):
    """Standard input cannot be rewound: the sniffed magic is served again from memory."""
    text, records = _fasta(30)
    code = ("import sys; from virnucpro.io.fasta import read_fasta_bytes\n"
            "r = read_fasta_bytes('-'); print(r.compression, sum(1 for _ in r))")
    proc = subprocess.run([sys.executable, "-c", code], input=zstandard.ZstdCompressor().compress(text),
                          capture_output=True, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode().split() == ["zstd", str(len(records))]


@pytest.mark.skipif(sys.version_info >= (3, 14), reason="Python 3.14+ reads zstd with compression.zstd")
def test_zstd_without_the_package_is_a_one_line_error(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "zstandard.py").write_text("raise ImportError('zstandard is not installed here')\n")
    path = tmp_path / "x.fa.zst"
    path.write_bytes(zstandard.ZstdCompressor().compress(b">a\nACGT\n"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocker), str(REPO_ROOT)])}
    proc = subprocess.run([sys.executable, "-m", "virnucpro", "split", str(path), "-n", "1", "-o", str(tmp_path / "parts")],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    assert f"{path}: input is zstd-compressed; reading it needs the 'zstandard' package" in proc.stderr


# --- gzip: isal or the standard library, same bytes out --------------------------------


@pytest.fixture(params=["isal", "zlib"])
def gzip_impl(request, monkeypatch):
    if request.param == "zlib":
        monkeypatch.setenv("VIRNUCPRO_NO_ISAL", "1")
    else:
        monkeypatch.delenv("VIRNUCPRO_NO_ISAL", raising=False)
    assert gzip_module().__name__ == ("isal.igzip" if request.param == "isal" else "gzip")
    return request.param


def test_gzip_read_the_same_by_either(tmp_path, gzip_impl):
    text, records = _fasta()
    member = tmp_path / "m.fa.gz"  # two members, as bgzip and `cat a.gz b.gz` write
    member.write_bytes(gzip.compress(text[:1000]) + gzip.compress(text[1000:]))
    assert _read(member) == records


@pytest.mark.parametrize("cut", [lambda d: d[: len(d) // 2], lambda d: d[:-6]], ids=["half", "no-trailer"])
def test_truncated_gzip_reported_by_either(tmp_path, gzip_impl, cut):
    text, _ = _fasta()
    path = tmp_path / "t.fa.gz"
    path.write_bytes(cut(gzip.compress(text)))
    with pytest.raises(InputError, match="truncated or corrupt gzip"):
        _read(path)


def test_split_parts_same_content_either_way_and_reproducible(tmp_path, monkeypatch):
    text, records = _fasta(600)
    source = tmp_path / "in.fa.gz"
    source.write_bytes(gzip.compress(text))

    def split(where: str, impl: str) -> dict:
        if impl == "zlib":
            monkeypatch.setenv("VIRNUCPRO_NO_ISAL", "1")
        else:
            monkeypatch.delenv("VIRNUCPRO_NO_ISAL", raising=False)
        split_fasta(str(source), 3, tmp_path / where)
        return json.loads((tmp_path / where / "manifest.json").read_text())

    fast, again, plain = split("isal", "isal"), split("isal-again", "isal"), split("zlib", "zlib")
    parts = [p["file"] for p in fast["parts"]]
    for name in parts:
        assert (tmp_path / "isal" / name).read_bytes() == (tmp_path / "isal-again" / name).read_bytes()
        # the same records out, whichever compressor wrote them (compressed bytes may differ)
        assert gzip.decompress((tmp_path / "isal" / name).read_bytes()) == gzip.decompress(
            (tmp_path / "zlib" / name).read_bytes())
    assert fast == again
    assert [(p["records"], p["bases"]) for p in fast["parts"]] == [(p["records"], p["bases"]) for p in plain["parts"]]
    got = [record for name in parts for record in _read(tmp_path / "isal" / name)]
    assert got == records
    for manifest, where in ((fast, "isal"), (plain, "zlib")):
        for part in manifest["parts"]:
            assert hashlib.sha256((tmp_path / where / part["file"]).read_bytes()).hexdigest() == part["sha256"]
    # parts written by zlib still match their manifest when isal is there now: nothing rewritten
    before = {n: (tmp_path / "zlib" / n).stat().st_mtime_ns for n in parts}
    assert split("zlib", "isal") == plain
    assert {n: (tmp_path / "zlib" / n).stat().st_mtime_ns for n in parts} == before


def test_no_isal_switch_reaches_spawned_processes(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "VIRNUCPRO_NO_ISAL": "1"}
    code = "from virnucpro.io.fasta_open import gzip_module; print(gzip_module().__name__)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "gzip"
