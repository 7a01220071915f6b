"""``virnucpro models`` in subprocesses: real no-network failures, listing, lazy imports."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests.conftest import REPO_ROOT, host_resolves, run_cli
from virnucpro.errors import EXIT_MODEL_UNAVAILABLE, EXIT_USAGE


@pytest.fixture
def env(tmp_path):
    return {
        "VIRNUCPRO_CACHE": str(tmp_path / "vcache"),
        "TORCH_HOME": str(tmp_path / "torch"),
        "HF_HOME": str(tmp_path / "hf"),
        "VIRNUCPRO_OFFLINE": "",
        "HF_HUB_OFFLINE": "",
    }


def _one_error_line(result) -> str:
    stderr = result.stderr.decode()
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("virnucpro: error: ")
    return lines[0]


def test_help_lists_subcommands():
    result = run_cli("models", "--help")
    assert result.returncode == 0
    out = result.stdout.decode()
    assert "download" in out and "list" in out


@pytest.mark.skipif(host_resolves("dl.fbaipublicfiles.com"), reason="host reachable: would really download")
def test_download_esm_without_network_exits_4_fast(env, tmp_path):
    start = time.monotonic()
    result = run_cli("models", "download", "esm", "--esm-model", "esm2_t6_8M_UR50D", env=env, timeout=120)
    assert time.monotonic() - start < 30
    assert result.returncode == EXIT_MODEL_UNAVAILABLE
    line = _one_error_line(result)
    assert "esm2_t6_8M_UR50D" in line and str(tmp_path / "torch") in line and "--esm-model FILE" in line


def test_offline_classifier_download_exits_4(env, tmp_path):
    env["VIRNUCPRO_OFFLINE"] = "1"
    result = run_cli("models", "download", "classifier", "--model-type", "500", env=env, timeout=120)
    assert result.returncode == EXIT_MODEL_UNAVAILABLE
    line = _one_error_line(result)
    assert str(tmp_path / "vcache" / "classifiers" / "500_model.pth") in line and "VIRNUCPRO_OFFLINE=1" in line


def test_download_all_tries_every_model_before_failing(env):
    env["VIRNUCPRO_OFFLINE"] = "1"
    result = run_cli("models", "download", "all", env=env, timeout=120)
    assert result.returncode == EXIT_MODEL_UNAVAILABLE
    stderr = result.stderr.decode()
    assert "Traceback" not in stderr
    for name in ("esm2_t36_3B_UR50D", "zhihan1996/DNABERT-S", "300_model.pth", "500_model.pth"):
        assert name in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("virnucpro: error:")]
    assert len(errors) == 1 and "4 of 4 models could not be fetched" in errors[0]


def test_bad_kind_is_a_usage_error(env):
    result = run_cli("models", "download", "weights", env=env)
    assert result.returncode == EXIT_USAGE


def test_list_plain_text(env, tmp_path):
    from virnucpro.models.demo import ensure_demo_models

    demo_set = ensure_demo_models(tmp_path / "vcache")
    result = run_cli("models", "list", env=env, timeout=120)
    assert result.returncode == 0, result.stderr.decode()
    lines = result.stdout.decode().splitlines()
    assert lines[0] == "kind\tname\twhere\tsize\tstatus"
    assert any(line.startswith(f"demo\tv1\t{demo_set.root}\t") and line.endswith("\tcomplete") for line in lines)


def test_cli_import_does_not_import_torch():
    code = (
        "import sys, virnucpro.cli, virnucpro.cli.models;"
        "from virnucpro.cli.main import LAZY_COMMANDS;"
        "assert LAZY_COMMANDS['models'] == 'virnucpro.cli.models:models';"
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO_ROOT)
