"""``scripts/gpu_acceptance.py --quick``: every check runs at tiny size on the CPU and gets a verdict."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT

SCRIPT = REPO_ROOT / "scripts" / "gpu_acceptance.py"
EXPECTED = {
    "environment", "attention_backends", "benchmark", "esm2_mfu", "dnabert_s_mfu", "bf16_cosine",
    "fair_esm_agreement", "batched_vs_unbatched", "forced_oom", "worker_faults", "predict_demo",
    "benchmark_targets",
}


@pytest.mark.slow
def test_quick_acceptance_passes_or_skips_each_check_for_want_of_a_gpu(tmp_path):
    out = tmp_path / "acceptance.json"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--json", str(out)], env=env,
                          capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    data = json.loads(out.read_text())
    assert data["schema"] == "virnucpro-gpu-acceptance/1" and data["quick"] is True
    assert set(data["checks"]) == EXPECTED
    for name, check in data["checks"].items():
        assert check["verdict"] in ("pass", "skipped"), (name, check)
        if check["verdict"] == "skipped":
            assert "no GPU" in check["reason"], (name, check["reason"])
    # The paths that run on the CPU really ran.
    faults = data["checks"]["worker_faults"]
    assert faults["finished"] == faults["tasks"] and faults["device_faults_on"] and faults["sigkilled_tasks"] == ["t03"]
    assert data["checks"]["benchmark"]["engines"] and data["checks"]["bf16_cosine"]["cosine_min"]["esm2"] >= 0.999
    assert data["checks"]["benchmark"]["tokenize"]["esm2"]["in_timed_passes"] is False


def test_unknown_check_is_a_usage_error(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "--json", str(tmp_path / "a.json"), "--only", "nope"],
                          env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, capture_output=True, timeout=120)
    assert done.returncode == 2 and b"unknown check 'nope'" in done.stderr


def _load_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_acceptance", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_a_failing_or_overrunning_check_is_recorded_and_the_run_goes_on(tmp_path):
    import time

    import torch

    acceptance = _load_script()
    ctx = acceptance.Context(True, torch.device("cpu"), tmp_path, {})

    def broken(_ctx):
        raise RuntimeError("kernel exploded")

    def slow(_ctx):
        time.sleep(30)

    failed = acceptance.run_check("broken", broken, 5, ctx)
    assert failed["verdict"] == "fail" and "kernel exploded" in failed["reason"]
    began = time.monotonic()
    overran = acceptance.run_check("slow", slow, 0.5, ctx)
    assert overran["verdict"] == "fail" and "time budget" in overran["reason"] and time.monotonic() - began < 5
    assert acceptance.run_check("env", acceptance.check_environment, 60, ctx)["verdict"] == "pass"
