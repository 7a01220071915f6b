"""The shared sha256 caches: in-process and across runs (fingerprints.json)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

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
