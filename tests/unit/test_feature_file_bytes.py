"""Feature files are byte-reproducible: the same inputs give the same bytes in any process,
and files written by earlier versions (``safetensors.numpy.save``) still read the same."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO_ROOT
from virnucpro.pipeline.stages.feature_files import (
    EMBEDDINGS_KEY,
    ReusedRow,
    read_feature_header,
    read_features,
    write_features,
)

WRITE_ONE = """
import sys
from pathlib import Path
import numpy as np
from virnucpro.pipeline.stages.feature_files import ReusedRow, write_features
ids = [f"seq{i}_chunk_1F{i % 3 + 1}" for i in range(7)]
embeddings = np.arange(7 * 5, dtype=np.float32).reshape(7, 5) / 3
info = {"identity": {"model": "demo", "precision": "fp32", "sha256": "ab" * 32, "zeta": 1, "alpha": [1, 2]},
        "dim": 5}
write_features(Path(sys.argv[1]), ids, embeddings, info, [ReusedRow("seq9_chunk_1F1", 7, 1, 0)])
"""


def write_in_a_new_process(path: Path, hash_seed: str) -> bytes:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), PYTHONHASHSEED=hash_seed)
    subprocess.run([sys.executable, "-c", WRITE_ONE, str(path)], check=True, env=env, timeout=120)
    return path.read_bytes()


def test_two_processes_write_the_same_bytes(tmp_path):
    # Before: safetensors' Rust hash map put the metadata keys in a per-process order.
    first = write_in_a_new_process(tmp_path / "a.safetensors", "1")
    for seed in ("2", "3", "4"):
        assert write_in_a_new_process(tmp_path / f"{seed}.safetensors", seed) == first
    features = read_features(tmp_path / "a.safetensors")
    assert features.ids[0] == "seq0_chunk_1F1" and features.embeddings.shape == (7, 5)
    assert features.reused == [ReusedRow("seq9_chunk_1F1", 7, 1, 0)]
    assert json.loads(features.metadata["identity"])["sha256"] == "ab" * 32


def test_the_file_is_what_safetensors_writes_and_reads(tmp_path):
    from safetensors import safe_open
    from safetensors.numpy import save

    ids = ["a", "b", "c"]
    embeddings = np.random.default_rng(1).standard_normal((3, 4)).astype(np.float32)
    info = {"identity": {"m": "x"}, "dim": 4}
    ours = tmp_path / "ours.safetensors"
    write_features(ours, ids, embeddings, info)
    data = ours.read_bytes()
    length = int.from_bytes(data[:8], "little")
    assert (8 + length) % 8 == 0
    header = json.loads(data[8:8 + length])
    assert list(header["__metadata__"]) == sorted(header["__metadata__"])
    theirs = save({EMBEDDINGS_KEY: embeddings}, metadata={"ids": json.dumps(ids), "identity": json.dumps({"m": "x"}),
                                                          "dim": "4"})
    assert data[8 + length:] == theirs[8 + int.from_bytes(theirs[:8], "little"):]  # same tensor bytes
    with safe_open(str(ours), framework="np") as handle:
        assert handle.metadata() == {"ids": json.dumps(ids), "identity": json.dumps({"m": "x"}), "dim": "4"}
        assert np.array_equal(handle.get_tensor(EMBEDDINGS_KEY), embeddings)


def test_a_file_written_by_the_library_still_reads(tmp_path):
    from safetensors.numpy import save

    old = tmp_path / "old.safetensors"
    embeddings = np.ones((2, 3), dtype=np.float32)
    old.write_bytes(save({EMBEDDINGS_KEY: embeddings},
                         metadata={"reused": "[]", "ids": '["x", "y"]', "dim": "3", "identity": "{}"}))
    features = read_features(old)
    assert features.ids == ["x", "y"] and np.array_equal(features.embeddings, embeddings)
    assert read_feature_header(old) == (["x", "y"], (2, 3), 0)


@pytest.mark.parametrize("rows", [0, 1])
def test_empty_and_single_row_files(tmp_path, rows):
    path = tmp_path / "f.safetensors"
    write_features(path, [f"id{i}" for i in range(rows)], np.zeros((rows, 6), dtype=np.float64), {"dim": 6})
    features = read_features(path)
    assert features.embeddings.shape == (rows, 6) and features.embeddings.dtype == np.float32
