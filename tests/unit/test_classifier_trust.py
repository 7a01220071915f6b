"""The published classifiers: pinned source, git blob ids checked before a file enters the cache.

Downloads run against a real HTTP server on 127.0.0.1 serving a good and a
tampered file; the good file is the tiny fixture classifier with its blob id
pinned in place of the published one (the published files are not on the test
machines). The CLI test uses the real pins, which a tampered file never matches.
"""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, run_cli
from virnucpro.errors import EXIT_MODEL_UNAVAILABLE, ClassifierMismatchError, ModelNotAvailableError
from virnucpro.models import registry
from virnucpro.models.registry import git_blob_sha1, resolve_classifier

FIXTURE_CLASSIFIER = Path(__file__).resolve().parents[1] / "data" / "tiny_reference" / "models" / "classifier_tiny.pth"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """A local HTTP server with ``good/500_model.pth`` and ``bad/500_model.pth`` (one byte changed)."""
    monkeypatch.setenv("VIRNUCPRO_CACHE", str(tmp_path / "vcache"))
    for var in ("VIRNUCPRO_OFFLINE", "HF_HUB_OFFLINE", "VIRNUCPRO_CLASSIFIER_URL"):
        monkeypatch.delenv(var, raising=False)
    root = tmp_path / "www"
    for name in ("good", "bad"):
        (root / name).mkdir(parents=True)
        shutil.copy(FIXTURE_CLASSIFIER, root / name / "500_model.pth")
    tampered = bytearray((root / "bad" / "500_model.pth").read_bytes())
    tampered[-10] ^= 0xFF
    (root / "bad" / "500_model.pth").write_bytes(bytes(tampered))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _cache_files() -> list[str]:
    folder = registry.classifier_cache_path(500).parent
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock")) if folder.is_dir() else []


def test_git_blob_sha1_is_what_git_computes(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    for content in (b"", b"hello\n", FIXTURE_CLASSIFIER.read_bytes()):
        path = tmp_path / "f"
        path.write_bytes(content)
        expected = subprocess.run(["git", "hash-object", str(path)], capture_output=True, check=True, text=True)
        assert git_blob_sha1(path) == expected.stdout.strip()


def test_the_default_source_is_the_pinned_commit(monkeypatch):
    monkeypatch.delenv("VIRNUCPRO_CLASSIFIER_URL", raising=False)
    assert registry.classifier_url(300) == (
        "https://raw.githubusercontent.com/Li-Jing-1997/VirNucPro/0f93f2755a7ea1acd3ff1bcf182892f960ef3326/300_model.pth"
    )
    assert registry.CLASSIFIER_BLOBS == {
        300: "a0b5b85e7c1e44f00cde146d091beb82b2c8e855",
        500: "fc35d5ef9f1f4564eea7036f34f4f8ec6000d33d",
    }
    monkeypatch.setenv("VIRNUCPRO_CLASSIFIER_URL", "https://mirror.example/virnucpro/")
    assert registry.classifier_url(500) == "https://mirror.example/virnucpro/500_model.pth"
    assert registry.classifier_url(500, "https://m.example/{model_type}.pth") == "https://m.example/500.pth"


def test_a_mirror_file_with_the_pinned_blob_is_cached(mirror, monkeypatch):
    root, base = mirror
    monkeypatch.setitem(registry.CLASSIFIER_BLOBS, 500, git_blob_sha1(root / "good" / "500_model.pth"))
    monkeypatch.setenv("VIRNUCPRO_CLASSIFIER_URL", base + "/good")
    path = resolve_classifier(500)
    assert path == registry.classifier_cache_path(500)
    assert path.read_bytes() == FIXTURE_CLASSIFIER.read_bytes()


def test_a_tampered_file_is_refused_and_not_kept(mirror, monkeypatch):
    root, base = mirror
    monkeypatch.setitem(registry.CLASSIFIER_BLOBS, 500, git_blob_sha1(root / "good" / "500_model.pth"))
    with pytest.raises(ClassifierMismatchError) as info:
        resolve_classifier(500, url=base + "/bad")
    message = str(info.value)
    assert "\n" not in message
    assert "not the published file" in message and git_blob_sha1(root / "bad" / "500_model.pth") in message
    assert registry.CLASSIFIER_BLOBS[500] in message and "--model-path" in message
    assert _cache_files() == []  # neither the file nor a partial download
    assert isinstance(info.value, ModelNotAvailableError)


def test_a_cached_file_that_is_not_the_published_one_is_named(mirror, caplog):
    dest = registry.classifier_cache_path(500)
    dest.parent.mkdir(parents=True)
    shutil.copy(FIXTURE_CLASSIFIER, dest)
    assert resolve_classifier(500, offline=True) == dest
    assert any("not the published classifier" in r.getMessage() for r in caplog.records)


@pytest.mark.slow
def test_cli_download_of_a_tampered_file_is_one_line_and_keeps_nothing(mirror, tmp_path):
    _, base = mirror
    env = {"VIRNUCPRO_CACHE": str(tmp_path / "vcache")}
    result = run_cli("models", "download", "classifier", "--model-type", "500", "--classifier-url", base + "/bad", env=env)
    err = result.stderr.decode()
    assert result.returncode == EXIT_MODEL_UNAVAILABLE, err
    lines = [line for line in err.splitlines() if line.startswith("virnucpro: error:")]
    assert len(lines) == 1 and "not the published file" in lines[0] and "Traceback" not in err
    assert _cache_files() == []
    # a mirror given through the environment is held to the same pin
    result = run_cli("models", "download", "classifier", "--model-type", "500",
                     env={**env, "VIRNUCPRO_CLASSIFIER_URL": base + "/good"})
    assert result.returncode == EXIT_MODEL_UNAVAILABLE and "not the published file" in result.stderr.decode()
    assert _cache_files() == []


@pytest.mark.slow
def test_run_summary_records_the_classifier_blob(tmp_path):
    out = tmp_path / "out"
    fasta = tmp_path / "in.fa"
    fasta.write_text(">a\n" + "ACGTTGCA" * 40 + "\n")
    cache = REPO_ROOT / ".pytest_cache" / "virnucpro-cache"  # the shared demo set of the CLI tests
    result = run_cli("predict", str(fasta), "-o", str(out), "--models", "demo", "--no-dashboard",
                     env={"VIRNUCPRO_CACHE": str(cache)})
    assert result.returncode == 0, result.stderr.decode()
    summary = json.loads((out / "run_summary.json").read_text())
    from virnucpro.models.demo import ensure_demo_models

    blob = git_blob_sha1(ensure_demo_models(cache).classifier_path)
    assert summary["models"]["classifier"]["git_blob_sha1"] == blob
