"""Downloads against a real HTTP server on 127.0.0.1: cut transfers resumed, retries, servers
that ignore ranges, changed files, kills at any moment, concurrent downloaders.

The server (tests/helpers/range_server.py) supports byte ranges and validators and
misbehaves on demand; every assertion is about the bytes on disk and the requests the
server really received.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.range_server import range_server
from virnucpro import net
from virnucpro.net import download_file, find_partials, partial_path

REPO_ROOT = Path(__file__).resolve().parents[2]
SIZE = 1_000_000


@pytest.fixture
def served(tmp_path):
    """A server on 127.0.0.1 serving ``model.bin`` (1 MB of non-repeating bytes)."""
    root = tmp_path / "www"
    root.mkdir()
    (root / "model.bin").write_bytes(os.urandom(SIZE))
    with range_server(root) as server:
        yield server


def _dest(tmp_path: Path) -> Path:
    return tmp_path / "cache" / "model.bin"


def test_cut_transfer_is_resumed_by_the_next_call(served, tmp_path):
    dest = _dest(tmp_path)
    served.faults.drop_after = 300_000
    with pytest.raises(OSError):
        download_file(served.base_url + "/model.bin", dest, attempts=1)
    part = partial_path(dest)
    assert not dest.exists() and part.stat().st_size == 300_000
    [partial] = find_partials(dest.parent)
    assert (partial.size, partial.total, partial.url) == (300_000, SIZE, served.base_url + "/model.bin")

    download_file(served.base_url + "/model.bin", dest, attempts=1)
    assert dest.read_bytes() == (served.root / "model.bin").read_bytes()
    first, second = served.gets("/model.bin")
    assert (first.range, first.status) == (None, 200)
    assert (second.range, second.status) == ("bytes=300000-", 206)
    assert second.if_range and second.if_range.startswith('"')  # the strong ETag
    assert second.body_bytes == SIZE - 300_000  # only the rest travelled
    assert sorted(p.name for p in dest.parent.iterdir()) == ["model.bin", "model.bin.lock"]


def test_a_cut_is_retried_in_the_same_call_and_each_try_logged(served, tmp_path, caplog):
    dest = _dest(tmp_path)
    served.faults.drop_after = 123_456
    with caplog.at_level(logging.WARNING, logger="virnucpro.net"):
        download_file(served.base_url + "/model.bin", dest, attempts=3, backoff_s=0.01)
    assert dest.read_bytes() == (served.root / "model.bin").read_bytes()
    assert [(r.range, r.status) for r in served.gets("/model.bin")] == [(None, 200), ("bytes=123456-", 206)]
    assert any("try 1 of 3 failed" in m and "kept" in m for m in caplog.messages)


def test_server_that_ignores_range_restarts_cleanly(served, tmp_path, caplog):
    dest = _dest(tmp_path)
    served.faults.drop_after = 400_000
    with pytest.raises(OSError):
        download_file(served.base_url + "/model.bin", dest, attempts=1)
    served.faults.ignore_range = True
    with caplog.at_level(logging.WARNING, logger="virnucpro.net"):
        download_file(served.base_url + "/model.bin", dest, attempts=1)
    assert dest.read_bytes() == (served.root / "model.bin").read_bytes()  # not 400 kB + the whole file
    assert served.gets("/model.bin")[-1].status == 200
    assert any("sent the whole file" in m for m in caplog.messages)


def test_file_changed_on_the_server_restarts_from_the_new_file(served, tmp_path):
    dest = _dest(tmp_path)
    served.faults.drop_after = 200_000
    with pytest.raises(OSError):
        download_file(served.base_url + "/model.bin", dest, attempts=1)
    new = os.urandom(SIZE + 5)
    (served.root / "model.bin").write_bytes(new)
    os.utime(served.root / "model.bin", ns=(1, 1))  # other ETag and Last-Modified
    download_file(served.base_url + "/model.bin", dest, attempts=1)
    assert dest.read_bytes() == new
    last = served.gets("/model.bin")[-1]
    assert last.range == "bytes=200000-" and last.status == 200  # If-Range failed: whole new file


def test_partial_without_validators_is_not_resumed(served, tmp_path):
    dest = _dest(tmp_path)
    served.faults.no_validators = True
    served.faults.drop_after = 200_000
    with pytest.raises(OSError):
        download_file(served.base_url + "/model.bin", dest, attempts=1)
    download_file(served.base_url + "/model.bin", dest, attempts=1)
    assert dest.read_bytes() == (served.root / "model.bin").read_bytes()
    assert served.gets("/model.bin")[-1].range is None  # nothing proves the bytes are the same file's


def test_flaky_server_fails_twice_then_serves(served, tmp_path, caplog):
    dest = _dest(tmp_path)
    served.faults.fail_next = 2
    with caplog.at_level(logging.WARNING, logger="virnucpro.net"):
        download_file(served.base_url + "/model.bin", dest, attempts=3, backoff_s=0.01)
    assert dest.read_bytes() == (served.root / "model.bin").read_bytes()
    assert [r.status for r in served.gets("/model.bin")] == [503, 503, 200]
    assert sum("HTTP 503" in m for m in caplog.messages) == 2


def test_tries_are_bounded(served, tmp_path):
    dest = _dest(tmp_path)
    served.faults.fail_next = 10
    with pytest.raises(OSError, match="503"):
        download_file(served.base_url + "/model.bin", dest, attempts=3, backoff_s=0.01)
    assert len(served.gets("/model.bin")) == 3
    assert sorted(p.name for p in dest.parent.iterdir()) == ["model.bin.lock"]


def test_not_found_is_not_retried(served, tmp_path):
    dest = tmp_path / "cache" / "missing.bin"
    with pytest.raises(OSError, match="404"):
        download_file(served.base_url + "/missing.bin", dest, attempts=5, backoff_s=0.01)
    assert len(served.gets("/missing.bin")) == 1


def test_rejected_file_is_not_kept_and_not_resumed(served, tmp_path):
    dest = _dest(tmp_path)

    def reject(path: Path) -> None:
        assert path == partial_path(dest) and path.stat().st_size == SIZE  # checked before the rename
        raise ValueError("not the published file")

    with pytest.raises(ValueError):
        download_file(served.base_url + "/model.bin", dest, validate=reject)
    assert sorted(p.name for p in dest.parent.iterdir()) == ["model.bin.lock"]


def test_complete_partial_killed_before_the_rename_needs_no_transfer(served, tmp_path):
    dest = _dest(tmp_path)
    download_file(served.base_url + "/model.bin", dest)
    dest.rename(partial_path(dest))  # as if killed between the last byte and the rename ...
    net._write_record(net._validators_path(dest), {  # ... with the record the transfer wrote
        "url": served.base_url + "/model.bin", "etag": '"x"', "last_modified": None, "total": SIZE})
    requests = len(served.requests)
    download_file(served.base_url + "/model.bin", dest)
    assert len(served.requests) == requests
    assert dest.read_bytes() == (served.root / "model.bin").read_bytes()


_CHILD = """
import logging, sys
from pathlib import Path
logging.basicConfig(level=logging.INFO)
from virnucpro.net import download_file
download_file(sys.argv[1], Path(sys.argv[2]), attempts=1)
"""


def _child(url: str, dest: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.Popen([sys.executable, "-c", _CHILD, url, str(dest)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _wait_for(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_sigkilled_download_is_continued_by_a_new_process(served, tmp_path):
    dest = _dest(tmp_path)
    served.faults.delay_per_chunk_s = 0.05  # 64 KiB per 50 ms: the kill lands mid-transfer
    child = _child(served.base_url + "/model.bin", dest)
    part = partial_path(dest)
    _wait_for(lambda: part.is_file() and part.stat().st_size >= 200_000)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    kept = part.stat().st_size
    assert 200_000 <= kept < SIZE and not dest.exists()

    served.faults.delay_per_chunk_s = 0.0
    resumed = _child(served.base_url + "/model.bin", dest)
    out, _ = resumed.communicate(timeout=60)
    assert resumed.returncode == 0, out.decode()
    assert dest.read_bytes() == (served.root / "model.bin").read_bytes()
    last = served.gets("/model.bin")[-1]
    assert (last.range, last.status, last.body_bytes) == (f"bytes={kept}-", 206, SIZE - kept)
    assert "resuming at" in out.decode()


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_two_processes_share_one_download(served, tmp_path):
    dest = _dest(tmp_path)
    served.faults.delay_per_chunk_s = 0.01
    children = [_child(served.base_url + "/model.bin", dest) for _ in range(2)]
    for child in children:
        out, _ = child.communicate(timeout=60)
        assert child.returncode == 0, out.decode()
    assert dest.read_bytes() == (served.root / "model.bin").read_bytes()
    assert len(served.gets("/model.bin")) == 1  # the second waited on the lock and found the file


def test_progress_line_shows_size_speed_and_time_left():
    assert net.progress_line(400, 1000, 100.0) == "40% (400 B of 1000 B, 100 B/s, 6 s left)"
    assert net.progress_line(5 << 30, None, float(1 << 20)).startswith("5.0 GiB, 1.0 MiB/s")


# --- every model kind through the registry: mirrors, resumed transfers, doctor --------------


@pytest.fixture
def caches(tmp_path, monkeypatch):
    """Every model cache under tmp_path; no offline switch or mirror inherited from the caller."""
    monkeypatch.setenv("VIRNUCPRO_CACHE", str(tmp_path / "vcache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    for var in ("HF_HUB_CACHE", "VIRNUCPRO_OFFLINE", "HF_HUB_OFFLINE", "VIRNUCPRO_CLASSIFIER_URL", "VIRNUCPRO_ESM_URL",
                "VIRNUCPRO_DOWNLOAD_TRIES"):
        monkeypatch.delenv(var, raising=False)


def test_esm_mirror_base_url_and_template(caches, served, monkeypatch):
    from virnucpro.models import registry

    name = "esm2_t6_8M_UR50D"
    (served.root / "esm").mkdir()
    (served.root / "esm" / f"{name}.pt").write_bytes(os.urandom(300_000))
    (served.root / "esm" / f"{name}-contact-regression.pt").write_bytes(b"regression")
    monkeypatch.setenv("VIRNUCPRO_ESM_URL", served.base_url + "/esm/")
    assert registry.esm_urls(name) == (f"{served.base_url}/esm/{name}.pt", f"{served.base_url}/esm/{name}-contact-regression.pt")
    assert registry.esm_urls(name, "https://m.example/x/{file}?dl=1")[1] == f"https://m.example/x/{name}-contact-regression.pt?dl=1"
    served.faults.drop_after = 100_000  # the checkpoint's first try is cut: the retry continues it
    model = registry.resolve_esm_model(name)
    assert model.read_bytes() == (served.root / "esm" / f"{name}.pt").read_bytes()
    assert [(r.range, r.status) for r in served.gets(f"/esm/{name}.pt")] == [(None, 200), ("bytes=100000-", 206)]
    assert model.with_name(f"{name}-contact-regression.pt").read_bytes() == b"regression"


def test_classifier_mirror_download_is_resumed_and_still_verified(caches, served, monkeypatch):
    from virnucpro.models import registry

    fixture = REPO_ROOT / "tests" / "data" / "tiny_reference" / "models" / "classifier_tiny.pth"
    (served.root / "500_model.pth").write_bytes(fixture.read_bytes())
    monkeypatch.setitem(registry.CLASSIFIER_BLOBS, 500, registry.git_blob_sha1(fixture))
    monkeypatch.setenv("VIRNUCPRO_CLASSIFIER_URL", served.base_url)
    served.faults.drop_after = fixture.stat().st_size // 2
    dest = registry.classifier_cache_path(500)
    monkeypatch.setenv("VIRNUCPRO_DOWNLOAD_TRIES", "1")
    with pytest.raises(Exception, match="download failed"):
        registry.resolve_classifier(500)
    monkeypatch.delenv("VIRNUCPRO_DOWNLOAD_TRIES")
    assert partial_path(dest).stat().st_size == fixture.stat().st_size // 2
    assert registry.resolve_classifier(500) == dest
    assert dest.read_bytes() == fixture.read_bytes()
    assert served.gets("/500_model.pth")[-1].status == 206


def test_doctor_lists_partial_downloads(caches, served, tmp_path):
    from virnucpro.doctor import Report, _caches
    from virnucpro.models.locations import esm_hub_dir

    dest = esm_hub_dir() / "esm2_t6_8M_UR50D.pt"
    served.faults.drop_after = 250_000
    with pytest.raises(OSError):
        download_file(served.base_url + "/model.bin", dest, attempts=1)
    blob = tmp_path / "hf" / "hub" / "models--zhihan1996--DNABERT-S" / "blobs" / "abc123.incomplete"
    blob.parent.mkdir(parents=True)
    blob.write_bytes(b"x" * 1000)
    report = Report()
    _caches(report)
    lines = [c.detail for c in report.checks if c.name == "partial download"]
    assert any(str(partial_path(dest)) in line and "244.1 KiB of 976.6 KiB" in line for line in lines), lines
    assert any(str(blob) in line for line in lines), lines


def hub_files() -> dict[str, bytes]:
    """The tiny DNABERT-S fixture as a hub repo, with 24 MiB of weights (huggingface_hub writes its
    partial file in 10 MiB pieces, so a cut after 15 MiB leaves something to continue) and a code
    file that must never be fetched."""
    tiny = REPO_ROOT / "tests" / "data" / "tiny_reference" / "models" / "dnabert_tiny"
    files = {p.name: p.read_bytes() for p in sorted(tiny.iterdir()) if p.is_file()}
    files["pytorch_model.bin"] = os.urandom(24 << 20)
    files["modeling_bert.py"] = b"raise SystemExit('never fetched, never run')\n"
    return files


def run_hub_client(base_url: str, hf_home: Path, repo_id: str, pythonpath: str, tries: int = 3) -> dict:
    """Fetch ``repo_id`` from the hub mirror at ``base_url`` in a child process; its JSON report
    (``stderr``: the child's log)."""
    import json

    env = {**os.environ, "HF_ENDPOINT": base_url, "HF_HOME": str(hf_home), "PYTHONPATH": pythonpath,
           "VIRNUCPRO_DOWNLOAD_TRIES": str(tries)}
    for var in ("HF_HUB_CACHE", "HF_HUB_OFFLINE", "VIRNUCPRO_OFFLINE", "HF_TOKEN"):
        env.pop(var, None)
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "tests" / "helpers" / "hub_client.py"), repo_id],
                          env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {**json.loads(proc.stdout), "stderr": proc.stderr}


def check_hub_download(served, report: dict, files: dict[str, bytes]) -> None:
    """Only the allowed files, complete; found again offline; the cut transfer continued by a range."""
    fetched = {name: bytes.fromhex(data) for name, data in report["files"].items()}
    assert fetched == {k: v for k, v in files.items() if k != "modeling_bert.py"}
    assert report["again"] == report["path"] and report["listed"] == [["lab/DNABERT-S@main", True]]
    assert report["partials"] == []
    gets = [r for r in served.requests if r.method == "GET" and r.path.endswith("/pytorch_model.bin")]
    assert gets[0].body_bytes == 15 << 20  # cut ...
    assert gets[-1].status == 206 and gets[-1].range.startswith("bytes=")  # ... and continued
    assert gets[-1].body_bytes == (24 << 20) - int(gets[-1].range[6:-1])
    assert not any(r.path.endswith("modeling_bert.py") for r in served.requests)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_dnabert_from_a_hub_mirror_survives_failures_and_a_cut(served, tmp_path):
    """HF_ENDPOINT as a mirror: the API and files from the local server. The file list fails more
    often than huggingface_hub retries by itself (our tries take over), and the weights' transfer
    is cut after 15 MiB (continued with a range request)."""
    from tests.helpers.range_server import serve_hub_repo

    files = hub_files()
    serve_hub_repo(served, "lab/DNABERT-S", files)
    served.faults.fail_next, served.faults.fail_path_suffix = 6, "/tree/main"
    served.faults.drop_after, served.faults.drop_path_suffix = 15 << 20, "/pytorch_model.bin"
    report = run_hub_client(served.base_url, tmp_path / "hf", "lab/DNABERT-S", str(REPO_ROOT))
    check_hub_download(served, report, files)
    assert "DNABERT-S model 'lab/DNABERT-S': try 1 of 3 failed" in report["stderr"]


def test_which_failures_are_retried():
    import email.message
    import http.client
    import socket
    import urllib.error

    def http_error(code: int, retry_after: str | None = None) -> urllib.error.HTTPError:
        headers = email.message.Message()
        if retry_after is not None:
            headers["Retry-After"] = retry_after
        return urllib.error.HTTPError("http://h/f", code, "x", headers, None)

    for transient in (http_error(503), http_error(429), http_error(500), TimeoutError("read"),
                      ConnectionResetError(), http.client.IncompleteRead(b"x", 10),
                      urllib.error.URLError(ConnectionRefusedError()), net.TransferError("short")):
        assert net.is_transient(transient), transient
    for permanent in (http_error(404), http_error(403), urllib.error.URLError(socket.gaierror(-2, "Name unknown")),
                      FileNotFoundError(), PermissionError(), OSError(28, "No space left on device")):
        assert not net.is_transient(permanent), permanent
    assert net.retry_delay(http_error(503, "7"), 1) == 7.0
    assert net.retry_delay(http_error(503, "9999"), 1) == net.MAX_BACKOFF_S
    assert [net.retry_delay(TimeoutError(), n, 2.0) for n in (1, 2, 3, 7)] == [2.0, 4.0, 8.0, 60.0]


def test_tries_setting(monkeypatch, caplog):
    monkeypatch.setenv("VIRNUCPRO_DOWNLOAD_TRIES", "9")
    assert net.download_attempts() == 9
    monkeypatch.setenv("VIRNUCPRO_DOWNLOAD_TRIES", "zero")
    with caplog.at_level(logging.WARNING, logger="virnucpro.net"):
        assert net.download_attempts() == net.DOWNLOAD_ATTEMPTS
    assert "VIRNUCPRO_DOWNLOAD_TRIES=zero" in caplog.text


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_models_download_esm_from_a_mirror_cli(served, tmp_path):
    name = "esm2_t6_8M_UR50D"
    (served.root / "mirror").mkdir()
    (served.root / "mirror" / f"{name}.pt").write_bytes(b"w" * 200_000)
    (served.root / "mirror" / f"{name}-contact-regression.pt").write_bytes(b"r")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "TORCH_HOME": str(tmp_path / "torch"),
           "VIRNUCPRO_CACHE": str(tmp_path / "vcache")}
    for var in ("VIRNUCPRO_OFFLINE", "HF_HUB_OFFLINE", "VIRNUCPRO_ESM_URL"):
        env.pop(var, None)
    proc = subprocess.run([sys.executable, "-m", "virnucpro", "models", "download", "esm", "--esm-model", name,
                           "--esm-url", served.base_url + "/mirror"], env=env, capture_output=True, text=True,
                          timeout=150)
    assert proc.returncode == 0, proc.stderr
    checkpoints = tmp_path / "torch" / "hub" / "checkpoints"
    assert (checkpoints / f"{name}.pt").read_bytes() == b"w" * 200_000
    assert (checkpoints / f"{name}-contact-regression.pt").read_bytes() == b"r"
