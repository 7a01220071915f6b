"""Model caches on a read-only file system: what is cached is used, what is not is one line.

A real read-only file system (a tmpfs remounted ``ro``), because this suite
runs as root and permission bits do not stop root. Skipped where mounting is
not permitted.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, TINY_REF, run_cli
from virnucpro.errors import EXIT_MODEL_UNAVAILABLE, ModelNotAvailableError
from virnucpro.models import registry

MODELS = TINY_REF / "models"
SHARED_CACHE = REPO_ROOT / ".pytest_cache" / "virnucpro-cache"  # where the CLI tests keep the demo set
HF_COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture()
def tmpfs(tmp_path):
    """A writable tmpfs; call ``read_only()`` on it to remount it read-only."""
    mount_point = tmp_path / "cache"
    mount_point.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tmpfs needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(mount_point)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def read_only(mount_point: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(mount_point)], check=True)
    with pytest.raises(OSError):
        (mount_point / "probe").write_text("x")


@pytest.fixture()
def caches_in(tmpfs, monkeypatch):
    """All three caches on the tmpfs, no offline switch: downloads would be attempted."""
    monkeypatch.setenv("VIRNUCPRO_CACHE", str(tmpfs / "virnucpro"))
    monkeypatch.setenv("TORCH_HOME", str(tmpfs / "torch"))
    monkeypatch.setenv("HF_HOME", str(tmpfs / "hf"))
    for var in ("HF_HUB_CACHE", "VIRNUCPRO_OFFLINE", "HF_HUB_OFFLINE", "VIRNUCPRO_CLASSIFIER_URL"):
        monkeypatch.delenv(var, raising=False)
    return tmpfs


def _fill_hub_cache(hub: Path, repo_id: str) -> Path:
    """The Hugging Face cache layout for one snapshot of ``repo_id`` holding the tiny DNABERT-S."""
    repo = hub / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / HF_COMMIT
    shutil.copytree(MODELS / "dnabert_tiny", snapshot)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(HF_COMMIT)
    return snapshot


def _one_line(message: str, *parts: str) -> None:
    assert "\n" not in message
    for part in parts:
        assert part in message, (part, message)


def test_cached_models_resolve_from_a_read_only_cache(caches_in):
    classifier = registry.classifier_cache_path(300)
    classifier.parent.mkdir(parents=True)
    shutil.copy(MODELS / "classifier_tiny.pth", classifier)
    esm, regression = registry.esm_cache_paths("esm2_t6_8M_UR50D")
    esm.parent.mkdir(parents=True)
    shutil.copy(MODELS / "esm2_t36_tiny.pt", esm)
    shutil.copy(MODELS / "esm2_t36_tiny-contact-regression.pt", regression)
    snapshot = _fill_hub_cache(registry.hf_cache_dir(), "zhihan1996/DNABERT-S")
    read_only(caches_in)

    assert registry.resolve_classifier(300) == classifier
    assert registry.resolve_esm_model("esm2_t6_8M_UR50D") == esm
    assert registry.resolve_dnabert_model("zhihan1996/DNABERT-S") == snapshot


def test_missing_models_in_a_read_only_cache_name_the_directory(caches_in):
    read_only(caches_in)
    cases = [
        (lambda: registry.resolve_classifier(500), caches_in / "virnucpro" / "classifiers", "VIRNUCPRO_CACHE"),
        (lambda: registry.resolve_esm_model("esm2_t6_8M_UR50D"), caches_in / "torch" / "hub" / "checkpoints",
         "TORCH_HOME"),
        (lambda: registry.resolve_dnabert_model("zhihan1996/DNABERT-S"), caches_in / "hf" / "hub", "HF_HOME"),
    ]
    for resolve, directory, variable in cases:
        with pytest.raises(ModelNotAvailableError) as info:
            resolve()
        _one_line(str(info.value), str(directory), "read-only file system", variable, "writable directory")


@pytest.mark.slow
def test_predict_with_the_demo_set_in_a_read_only_cache(tmpfs, tmp_path):
    from virnucpro.models.demo import ensure_demo_models

    built = ensure_demo_models(SHARED_CACHE)
    shutil.copytree(built.classifier_path.parent, tmpfs / "demo" / built.classifier_path.parent.name)
    read_only(tmpfs)
    fasta = tmp_path / "in.fa"
    fasta.write_text(">a\n" + "ACGTTGCAAT" * 40 + "\n")
    env = {"VIRNUCPRO_CACHE": str(tmpfs)}

    ran = run_cli("predict", str(fasta), "-o", str(tmp_path / "out"), "--models", "demo", "--no-dashboard", env=env)
    assert ran.returncode == 0, ran.stderr.decode()
    assert (tmp_path / "out" / "prediction_results.txt").is_file()

    subprocess.run(["umount", "-l", str(tmpfs)], check=True)  # now an empty, read-only cache
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,ro", "tmpfs", str(tmpfs)], check=True)
    refused = run_cli("predict", str(fasta), "-o", str(tmp_path / "out2"), "--models", "demo", env=env)
    err = refused.stderr.decode()
    assert refused.returncode == EXIT_MODEL_UNAVAILABLE, err
    errors = [line for line in err.splitlines() if line.startswith("virnucpro: error:")]
    assert len(errors) == 1 and "Traceback" not in err
    _one_line(errors[0], str(tmpfs / "demo"), "read-only file system", "VIRNUCPRO_CACHE")
