"""The shared sha256 caches: in-process and across runs (fingerprints.json)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from virnucpro.hashing import cached_sha256, file_sha256


def test_file_sha256_matches_hashlib_and_follows_rewrites(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"a" * 3_000_000)
    assert file_sha256(path) == hashlib.sha256(path.read_bytes()).hexdigest()
    path.write_bytes(b"b" * 10)
    assert file_sha256(path) == hashlib.sha256(b"b" * 10).hexdigest()
    assert file_sha256(path, use_cache=False) == hashlib.sha256(b"b" * 10).hexdigest()


def test_cached_sha256_is_remembered_across_runs_by_path_size_and_mtime(tmp_path: Path) -> None:
    path, store = tmp_path / "model.pt", tmp_path / "cache" / "fingerprints.json"
    path.write_bytes(b"weights")
    real = hashlib.sha256(b"weights").hexdigest()
    assert cached_sha256(path, store) == real
    known = json.loads(store.read_text())
    assert list(known.values()) == [real]
    # A later run reads the stored answer instead of hashing (shown by planting another value).
    store.write_text(json.dumps({key: "planted" for key in known}))
    assert cached_sha256(path, store) == "planted"
    os.utime(path, ns=(1, 1))  # another mtime: a new key, hashed again
    assert cached_sha256(path, store) == real


def test_cached_sha256_with_an_unwritable_store_still_answers(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    path.write_bytes(b"weights")
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    assert cached_sha256(path, blocker / "fingerprints.json") == hashlib.sha256(b"weights").hexdigest()
    garbage = tmp_path / "garbage.json"
    garbage.write_text("not json [")
    assert cached_sha256(path, garbage) == hashlib.sha256(b"weights").hexdigest()
    assert json.loads(garbage.read_text())  # replaced by a readable store


_WRITER = """
import sys, time
from pathlib import Path
from virnucpro.hashing import cached_sha256
files, store, go = [Path(p) for p in sys.argv[3:]], Path(sys.argv[1]), Path(sys.argv[2])
while not go.exists():
    time.sleep(0.001)
for path in files:
    cached_sha256(path, store)
"""


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_concurrent_jobs_lose_no_fingerprints(tmp_path: Path) -> None:
    """Four processes record 25 files each in one store at the same moment: all 100 entries stay."""
    store, go = tmp_path / "cache" / "fingerprints.json", tmp_path / "go"
    jobs = []
    for job in range(4):
        files = []
        for i in range(25):
            path = tmp_path / f"model-{job}-{i}.pt"
            path.write_bytes(f"{job}/{i}".encode())
            files.append(str(path))
        jobs.append(files)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(store), str(go), *files], env=env) for files in jobs]
    time.sleep(2.0)  # let every interpreter start and wait on the start file
    go.touch()
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    known = json.loads(store.read_text())
    assert len(known) == 100
    for files in jobs:
        for name in files:
            path = Path(name).resolve()
            st = path.stat()
            assert known[f"{path}|{st.st_size}|{st.st_mtime_ns}"] == hashlib.sha256(path.read_bytes()).hexdigest()
