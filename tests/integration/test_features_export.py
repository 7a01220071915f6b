"""`virnucpro features export` on a real `predict --keep-features` run of the fixture models."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import cli_in_process as cli
from tests.helpers.shared_run import shared_kept_run
from virnucpro.pipeline.stages.feature_files import read_features

# End-to-end runs in subprocesses: part of `make test`, not of `make test-fast`.
pytestmark = pytest.mark.slow

DIMS = {"dnabert": 48, "esm": 32}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    return shared_kept_run(tmp_path_factory)


def frame_ids_in_results(run: Path) -> list[str]:
    return [line.split("\t")[0] for line in (run / "prediction_results.txt").read_text().splitlines()[1:]]


def shard_features(run: Path, model: str) -> np.ndarray:
    files = sorted((run / "work" / "features").glob(f"shard-*.{model}.safetensors"))
    return np.concatenate([read_features(f).embeddings for f in files])


def test_npy_export_matches_the_shards_in_result_order(run, tmp_path):
    code, out, err = cli("features", "export", str(run), "-o", str(tmp_path))
    assert code == 0, err
    assert out.split() == [str(tmp_path / f"{m}_{k}") for m in DIMS for k in ("embeddings.npy", "ids.txt")]
    expected_ids = frame_ids_in_results(run)
    for model, dim in DIMS.items():
        array = np.load(tmp_path / f"{model}_embeddings.npy", mmap_mode="r")
        assert isinstance(array, np.memmap)
        assert array.dtype == np.float32 and array.shape == (len(expected_ids), dim)
        assert np.array_equal(array, shard_features(run, model))
        assert (tmp_path / f"{model}_ids.txt").read_text().splitlines() == expected_ids


def test_tsv_export_round_trips_float32_exactly(run, tmp_path):
    code, out, err = cli("features", "export", str(run), "-o", str(tmp_path), "--format", "tsv", "--model", "esm")
    assert code == 0, err
    lines = (tmp_path / "esm_embeddings.tsv").read_text().splitlines()
    assert lines[0].split("\t") == ["frame_id"] + [f"esm_{j}" for j in range(DIMS["esm"])]
    rows = [line.split("\t") for line in lines[1:]]
    assert [r[0] for r in rows] == frame_ids_in_results(run)
    values = np.array([[np.float32(v) for v in r[1:]] for r in rows], dtype=np.float32)
    assert np.array_equal(values, shard_features(run, "esm"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["esm_embeddings.tsv"]


def test_default_output_directory(run):
    code, out, err = cli("features", "export", str(run), "--model", "dnabert")
    assert code == 0, err
    assert (run / "features" / "dnabert_embeddings.npy").is_file()


def copy_run(run: Path, target: Path) -> Path:
    shutil.copytree(run / "work", target / "work")
    return target


def test_run_without_kept_features_says_to_rerun_with_keep_features(run, tmp_path):
    out = copy_run(run, tmp_path)
    shutil.rmtree(out / "work" / "features")
    code, _, err = cli("features", "export", str(out))
    assert code == 3
    assert err.count("\n") == 1 and "--keep-features" in err


def test_a_missing_shard_is_reported_and_nothing_is_written(run, tmp_path):
    out = copy_run(run, tmp_path)
    (out / "work" / "features" / "shard-00002.esm.safetensors").unlink()
    code, _, err = cli("features", "export", str(out), "-o", str(tmp_path / "export"))
    assert code == 3
    assert "shard-00002.esm.safetensors is missing or incomplete" in err
    assert not (tmp_path / "export").exists()


def test_not_a_run_directory(tmp_path):
    code, _, err = cli("features", "export", str(tmp_path))
    assert code == 3 and "not a virnucpro predict output directory" in err
