"""`virnucpro doctor`: real checks of this machine, the fixture models and empty caches."""

from __future__ import annotations

import io
import socket
import threading
import time
from pathlib import Path

from tests.conftest import TINY_REF, run_cli
from virnucpro import doctor

MODELS = TINY_REF / "models"
FIXTURE_MODELS = ["--esm-model", str(MODELS / "esm2_t36_tiny.pt"), "--dnabert-model", str(MODELS / "dnabert_tiny"),
                  "--model-path", str(MODELS / "classifier_tiny.pth")]


def empty_caches(tmp_path: Path) -> dict[str, str]:
    """Caches that hold nothing, and a proxy that refuses connections: 'no network' on any machine."""
    return {
        "TORCH_HOME": str(tmp_path / "torch"), "HF_HOME": str(tmp_path / "hf"),
        "VIRNUCPRO_CACHE": str(tmp_path / "virnucpro"),
        "https_proxy": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9", "no_proxy": "", "NO_PROXY": "",
    }


def test_fixture_models_offline_pass_with_every_section(tmp_path):
    result = run_cli("doctor", "--offline", *FIXTURE_MODELS)
    out = result.stdout.decode()
    assert result.returncode == 0, out + result.stderr.decode()
    for section in ("[system]", "[gpu]", "[caches]", "[optional]", "[network]", "[predict]"):
        assert section in out
    assert "models fit together" in out and "48 + ESM-2 32 = classifier input 80" in out
    assert "not checked (--offline)" in out
    from virnucpro.pipeline.report.gpu_monitor import visible_gpus

    if not visible_gpus():
        assert "no CUDA devices" in out
    else:
        assert "compute capability" in out and "free of" in out
    assert "┃" not in out  # plain text when not a terminal


def test_default_models_missing_offline_exit_4_naming_each_fix(tmp_path):
    result = run_cli("doctor", "--offline", env=empty_caches(tmp_path))
    out, err = result.stdout.decode(), result.stderr.decode()
    assert result.returncode == 4
    assert err.count("virnucpro: error:") == 1 and err.count("\n") == 1
    assert "predict cannot run as configured: ESM-2 esm2_t36_3B_UR50D" in err
    for fix in ("virnucpro models download esm --esm-model esm2_t36_3B_UR50D",
                "virnucpro models download dnabert --dnabert-model zhihan1996/DNABERT-S",
                "virnucpro models download classifier --model-type 500"):
        assert fix in out


def test_unreachable_sources_are_probed_quickly_and_fail_the_configuration(tmp_path):
    started = time.monotonic()
    result = run_cli("doctor", "--model-type", "300", env=empty_caches(tmp_path))
    out = result.stdout.decode()
    assert time.monotonic() - started < 30
    assert result.returncode == 4, out
    for host in ("dl.fbaipublicfiles.com", "huggingface.co", "raw.githubusercontent.com"):
        assert f"warn  {host}" in out
    assert "classifier 300_model.pth" in out and "is unreachable" in out


def test_demo_models_need_no_network(tmp_path):
    result = run_cli("doctor", "--offline", "--models", "demo", env=empty_caches(tmp_path))
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    assert "built locally on first use" in result.stdout.decode()


def test_a_silent_server_costs_one_timeout(tmp_path):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)  # accepts connections (backlog) and never answers
    port = server.getsockname()[1]
    try:
        started = time.monotonic()
        probes = doctor.probe_all([f"http://127.0.0.1:{port}/a", f"http://127.0.0.1:{port}/b"], timeout=0.5)
        assert time.monotonic() - started < 2.0
        assert not any(p.reachable for p in probes.values())
    finally:
        server.close()


def test_a_local_server_is_reachable():
    import http.server

    class Quiet(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self):  # noqa: N802 - http.server's naming
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/x"
        probe = doctor.probe_all([url], timeout=2)[url]
        assert probe.reachable and "HTTP 200" in probe.detail
    finally:
        server.shutdown()


def test_terminal_table_keeps_bracketed_text():
    report = doctor.Report()
    report.add("caches", "virnucpro", "ok", "/x [default]")

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Terminal()
    doctor.print_report(report, out)
    assert "[default]" in out.getvalue()


def test_demo_with_model_options_is_a_usage_error():
    from virnucpro.cli.main import main

    err = io.StringIO()
    assert main(["doctor", "--offline", "--models", "demo", "--esm-model", "x"], stdout=io.StringIO(), stderr=err) == 2
    assert "--models demo cannot be combined" in err.getvalue()
