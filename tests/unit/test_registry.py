"""Model registry: cache locations, local specs, offline and no-network failures, downloads, listing.

Model hosts are unreachable on the test machines, so the "no network" tests
fail for real; they skip where the host does resolve (they would otherwise
start a real download). Downloads are exercised against a local HTTP server.
"""

from __future__ import annotations

import functools
import http.server
import io
import shutil
import threading
import time
from pathlib import Path

import pytest
import torch

from tests.conftest import host_resolves
from virnucpro.cli.models import print_cached
from virnucpro.errors import ModelNotAvailableError
from virnucpro.models import registry
from virnucpro.models.inventory import list_cached
from virnucpro.models.registry import resolve_classifier, resolve_dnabert_model, resolve_esm_model
from virnucpro.net import download_file

FIXTURE_MODELS = Path(__file__).resolve().parents[1] / "data" / "tiny_reference" / "models"


@pytest.fixture(autouse=True)
def isolated_caches(tmp_path, monkeypatch):
    """Every cache under tmp_path; no offline switches inherited from the caller."""
    monkeypatch.setenv("VIRNUCPRO_CACHE", str(tmp_path / "vcache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    for var in ("HF_HUB_CACHE", "VIRNUCPRO_OFFLINE", "HF_HUB_OFFLINE", "VIRNUCPRO_CLASSIFIER_URL"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path




@pytest.fixture
def http_root(tmp_path):
    """A local HTTP server; yields (directory served, base URL)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass


def _assert_one_line_with(message: str, *parts: str) -> None:
    assert "\n" not in message
    for part in parts:
        assert part in message, (part, message)


# --- cache locations -------------------------------------------------------


def test_cache_dir_precedence(monkeypatch, tmp_path):
    assert registry.cache_dir() == tmp_path / "vcache"
    monkeypatch.delenv("VIRNUCPRO_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert registry.cache_dir() == tmp_path / "xdg" / "virnucpro"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert registry.cache_dir() == Path.home() / ".cache" / "virnucpro"


def test_torch_home_and_hf_home_are_respected(tmp_path, monkeypatch):
    assert registry.esm_hub_dir() == tmp_path / "torch" / "hub" / "checkpoints"
    assert registry.hf_cache_dir() == tmp_path / "hf" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hubcache"))
    assert registry.hf_cache_dir() == tmp_path / "hubcache"


def test_offline_switches(monkeypatch):
    assert not registry.is_offline()
    assert registry.is_offline(True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert registry.is_offline()
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("VIRNUCPRO_OFFLINE", "true")
    assert registry.is_offline()


# --- ESM-2 -----------------------------------------------------------------


def test_esm_local_file_and_cached_name(tmp_path):
    local = FIXTURE_MODELS / "esm2_t36_tiny.pt"
    assert resolve_esm_model(str(local)) == local
    model, regression = registry.esm_cache_paths("esm2_t6_8M_UR50D")
    model.parent.mkdir(parents=True)
    model.write_bytes(b"x")
    regression.write_bytes(b"y")
    assert resolve_esm_model("esm2_t6_8M_UR50D", offline=True) == model


def test_esm_unknown_name_and_missing_file(tmp_path):
    with pytest.raises(ModelNotAvailableError, match="unknown ESM-2 model 'esm1b_t33'"):
        resolve_esm_model("esm1b_t33")
    with pytest.raises(ModelNotAvailableError, match="file not found"):
        resolve_esm_model(str(tmp_path / "nope.pt"))


def test_esm_offline_error_names_model_cache_and_remedies(monkeypatch):
    monkeypatch.setenv("VIRNUCPRO_OFFLINE", "1")
    model, _ = registry.esm_cache_paths("esm2_t36_3B_UR50D")
    with pytest.raises(ModelNotAvailableError) as info:
        resolve_esm_model()
    _assert_one_line_with(
        str(info.value), "esm2_t36_3B_UR50D", str(model), "VIRNUCPRO_OFFLINE", "virnucpro models download esm", "--esm-model FILE"
    )


def test_esm_regression_companion_missing_counts_as_not_cached():
    model, _ = registry.esm_cache_paths("esm2_t6_8M_UR50D")
    model.parent.mkdir(parents=True)
    model.write_bytes(b"x")
    with pytest.raises(ModelNotAvailableError):
        resolve_esm_model("esm2_t6_8M_UR50D", offline=True)


@pytest.mark.skipif(host_resolves("dl.fbaipublicfiles.com"), reason="host reachable: would really download")
def test_esm_without_network_fails_fast():
    start = time.monotonic()
    with pytest.raises(ModelNotAvailableError) as info:
        resolve_esm_model("esm2_t6_8M_UR50D")
    assert time.monotonic() - start < 30
    _assert_one_line_with(str(info.value), "esm2_t6_8M_UR50D", "download failed", "--esm-model FILE")
    assert not any(registry.esm_hub_dir().glob("*.part*"))  # nothing arrived: no partial kept


def test_esm_download_by_name(http_root, monkeypatch):
    root, base = http_root
    (root / "models").mkdir()
    (root / "regression").mkdir()
    (root / "models" / "esm2_t6_8M_UR50D.pt").write_bytes(b"weights" * 1000)
    (root / "regression" / "esm2_t6_8M_UR50D-contact-regression.pt").write_bytes(b"reg")
    monkeypatch.setattr(registry, "ESM_MODEL_URL", base + "/models/{name}.pt")
    monkeypatch.setattr(registry, "ESM_REGRESSION_URL", base + "/regression/{name}-contact-regression.pt")
    path = resolve_esm_model("esm2_t6_8M_UR50D")
    model, regression = registry.esm_cache_paths("esm2_t6_8M_UR50D")
    assert path == model and model.read_bytes() == b"weights" * 1000 and regression.read_bytes() == b"reg"
    shutil.rmtree(root)  # now served from the cache only
    assert resolve_esm_model("esm2_t6_8M_UR50D") == model


# --- DNABERT-S -------------------------------------------------------------


def test_dnabert_local_dir():
    directory = FIXTURE_MODELS / "dnabert_tiny"
    assert resolve_dnabert_model(str(directory)) == directory


def test_dnabert_incomplete_dir_and_missing_path(tmp_path):
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text("{}")
    with pytest.raises(ModelNotAvailableError, match="missing tokenizer.json, model.safetensors or pytorch_model.bin"):
        resolve_dnabert_model(str(tmp_path / "half"))
    with pytest.raises(ModelNotAvailableError, match="directory not found"):
        resolve_dnabert_model(str(tmp_path / "absent"))


def _fake_hf_snapshot(cache: Path, repo_id: str, files: dict[str, bytes], commit: str = "a" * 40) -> Path:
    """The layout huggingface_hub writes: blobs, a snapshot of symlinks, and refs/main."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    for i, (name, data) in enumerate(files.items()):
        blob = repo / "blobs" / f"{i:040d}"
        blob.write_bytes(data)
        (snapshot / name).symlink_to(Path("..") / ".." / "blobs" / blob.name)
    return snapshot


def test_dnabert_from_hf_cache_offline():
    files = {name: (FIXTURE_MODELS / "dnabert_tiny" / name).read_bytes() for name in ("config.json", "tokenizer.json", "pytorch_model.bin")}
    snapshot = _fake_hf_snapshot(registry.hf_cache_dir(), "zhihan1996/DNABERT-S", files)
    assert resolve_dnabert_model(offline=True) == snapshot
    listed = [m for m in list_cached() if m.kind == "dnabert"]
    assert len(listed) == 1 and listed[0].complete and listed[0].name == "zhihan1996/DNABERT-S@main"


def test_dnabert_offline_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotAvailableError) as info:
        resolve_dnabert_model(revision="v1")
    _assert_one_line_with(
        str(info.value),
        "zhihan1996/DNABERT-S@v1",
        str(registry.hf_cache_dir()),
        "HF_HUB_OFFLINE",
        "--dnabert-revision v1",
        "--dnabert-model DIR",
    )


@pytest.mark.skipif(host_resolves("huggingface.co"), reason="host reachable: would really download")
def test_dnabert_without_network_fails_fast():
    start = time.monotonic()
    with pytest.raises(ModelNotAvailableError) as info:
        resolve_dnabert_model()
    assert time.monotonic() - start < 30
    _assert_one_line_with(str(info.value), "zhihan1996/DNABERT-S", "download failed", "virnucpro models download dnabert")


# --- classifier ------------------------------------------------------------


def test_classifier_local_file_and_errors(tmp_path):
    local = FIXTURE_MODELS / "classifier_tiny.pth"
    assert resolve_classifier(500, str(local)) == local
    with pytest.raises(ModelNotAvailableError, match="not found"):
        resolve_classifier(500, tmp_path / "nope.pth")
    with pytest.raises(ModelNotAvailableError, match="model type 400"):
        resolve_classifier(400)


def test_classifier_cached_and_offline(tmp_path):
    with pytest.raises(ModelNotAvailableError) as info:
        resolve_classifier(300, offline=True)
    dest = tmp_path / "vcache" / "classifiers" / "300_model.pth"
    _assert_one_line_with(str(info.value), "300_model.pth", str(dest), "--model-type 300", "--model-path FILE")
    dest.parent.mkdir(parents=True)
    shutil.copy(FIXTURE_MODELS / "classifier_tiny.pth", dest)
    assert resolve_classifier(300, offline=True) == dest


@pytest.mark.skipif(host_resolves("raw.githubusercontent.com"), reason="host reachable: would really download")
def test_classifier_without_network_fails_fast():
    start = time.monotonic()
    with pytest.raises(ModelNotAvailableError, match="download failed"):
        resolve_classifier(500)
    assert time.monotonic() - start < 30


def test_classifier_download_is_validated(http_root, monkeypatch, tmp_path):
    root, base = http_root
    shutil.copy(FIXTURE_MODELS / "classifier_tiny.pth", root / "500_model.pth")
    (root / "300_model.pth").write_text("version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 1\n")
    monkeypatch.setattr(registry, "CLASSIFIER_URL", base + "/{model_type}_model.pth")
    # the tiny fixture stands in for the published file: pin its blob id, and the LFS pointer's for 300
    monkeypatch.setitem(registry.CLASSIFIER_BLOBS, 500, registry.git_blob_sha1(root / "500_model.pth"))
    monkeypatch.setitem(registry.CLASSIFIER_BLOBS, 300, registry.git_blob_sha1(root / "300_model.pth"))
    assert resolve_classifier(500) == registry.classifier_cache_path(500)
    with pytest.raises(ModelNotAvailableError, match="not a usable classifier"):
        resolve_classifier(300)
    assert not registry.classifier_cache_path(300).exists()
    assert sorted(p.name for p in registry.classifier_cache_path(300).parent.iterdir() if not p.name.endswith(".lock")) == [
        "500_model.pth"
    ]


# --- download_file and listing ---------------------------------------------


def test_download_file_http_error_leaves_nothing(http_root, tmp_path):
    _, base = http_root
    dest = tmp_path / "out" / "f.bin"
    with pytest.raises(OSError, match="404"):
        download_file(base + "/missing.bin", dest)
    assert [p.name for p in dest.parent.iterdir()] == ["f.bin.lock"]


def test_download_concurrent_callers_get_one_file(http_root, tmp_path):
    root, base = http_root
    (root / "f.bin").write_bytes(bytes(range(256)) * 4096)
    dest = tmp_path / "out" / "f.bin"
    errors: list[BaseException] = []

    def fetch():
        try:
            download_file(base + "/f.bin", dest)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=fetch) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert dest.read_bytes() == (root / "f.bin").read_bytes()
    assert sorted(p.name for p in dest.parent.iterdir()) == ["f.bin", "f.bin.lock"]


def test_list_cached_and_print(tmp_path):
    model, regression = registry.esm_cache_paths("esm2_t6_8M_UR50D")
    model.parent.mkdir(parents=True)
    model.write_bytes(b"x" * 10)
    (model.parent / "esm2_t12_35M_UR50D.pt").write_bytes(b"y")  # no regression file: incomplete
    regression.write_bytes(b"z" * 5)
    clf = registry.classifier_cache_path(500)
    clf.parent.mkdir(parents=True)
    shutil.copy(FIXTURE_MODELS / "classifier_tiny.pth", clf)
    found = {(m.kind, m.name): m for m in list_cached()}
    assert found[("esm", "esm2_t6_8M_UR50D")].size_bytes == 15 and found[("esm", "esm2_t6_8M_UR50D")].complete
    assert not found[("esm", "esm2_t12_35M_UR50D")].complete
    assert found[("classifier", "500_model.pth")].path == clf
    out = io.StringIO()
    print_cached(list(found.values()), out)
    lines = out.getvalue().splitlines()
    assert lines[0] == "kind\tname\twhere\tsize\tstatus"
    assert f"esm\tesm2_t6_8M_UR50D\t{model}\t15 B\tcomplete" in lines
    assert any(line.startswith("esm\tesm2_t12_35M_UR50D") and line.endswith("incomplete") for line in lines)


def test_list_cached_empty():
    assert list_cached() == []
    out = io.StringIO()
    print_cached([], out)
    assert "no cached models" in out.getvalue()


def test_download_rejects_unknown_kind():
    with pytest.raises(ValueError):
        registry.download("weights")


def test_registry_import_does_not_need_torch_loaded():
    # torch is imported by this test module anyway; this checks the module does not import it at top level.
    import ast

    tree = ast.parse(Path(registry.__file__).read_text())
    top_level = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    names = {a.name for n in top_level for a in n.names} | {getattr(n, "module", None) for n in top_level}
    assert not any(str(name).startswith("torch") for name in names)
    assert torch.__version__
