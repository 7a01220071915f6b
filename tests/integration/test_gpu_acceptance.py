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
    "environment", "attention_backends", "benchmark", "compilation", "esm2_mfu", "dnabert_s_mfu", "bf16_cosine",
    "fair_esm_agreement", "pipeline", "batched_vs_unbatched", "forced_oom", "worker_faults", "predict_demo",
    "benchmark_targets",
}


@pytest.mark.slow
def test_quick_acceptance_passes_or_skips_each_check_for_want_of_a_gpu(tmp_path):
    out = tmp_path / "acceptance.json"
    # The compile cache goes where the suite keeps its other caches, not to the user's home.
    env = {"VIRNUCPRO_CACHE": str(REPO_ROOT / ".pytest_cache" / "virnucpro-cache"), **os.environ,
           "PYTHONPATH": str(REPO_ROOT), "CUDA_VISIBLE_DEVICES": ""}
    env.pop("TORCHINDUCTOR_CACHE_DIR", None)
    done = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--json", str(out), "--markdown"], env=env,
                          capture_output=True, timeout=600)
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
    # Warm-up and compilation ran outside the limits, through the same path as on a GPU.
    from virnucpro.models.fusion import compile_unavailable_reason

    bench = data["checks"]["benchmark"]
    warm = {(w["model"], w["precision"]): w for w in bench["warmup"]}
    assert set(warm) == {("esm2", "fp32"), ("esm2", "bf16"), ("dnabert_s", "fp32"), ("dnabert_s", "bf16")}
    assert bench["warmup_seconds"] >= sum(w["seconds"] for w in warm.values()) - 0.5
    assert bench["limit_reckoning"]["flops"]["esm2_low"] > 0 and bench["limit_s"] > 0
    if compile_unavailable_reason(__import__("torch").device("cpu")) is None:
        assert data["checks"]["compilation"]["verdict"] == "pass"
        assert warm[("esm2", "bf16")]["compiled"] and warm[("dnabert_s", "bf16")]["compiled"]
        assert warm[("esm2", "bf16")]["compile_seconds"] > 0
    assert not warm[("esm2", "fp32")]["compile_enabled"]  # the FP32 references run eager
    # MFU both ways: no datasheet figure for a CPU, the measured-peak figure is there.
    esm = next(e for e in bench["engines"] if (e["model"], e["implementation"], e["precision"]) == ("esm2", "ours", "bf16"))
    assert esm["mfu_datasheet"] is None and esm["datasheet_peak"] == "datasheet peak unknown" and esm["mfu"] > 0
    assert esm["frames"] > next(e["frames"] for e in bench["engines"] if e["precision"] == "fp32")
    # The real pipeline: two worker processes over several shards equal the one-process run.
    pipeline = data["checks"]["pipeline"]
    assert pipeline["frames"] > 2 * pipeline["shard_size"] and pipeline["vs_one"]["max_abs_score"] <= 1e-5
    assert pipeline["runs"]["workers_2"]["devices"] == ["cpu", "cpu"]
    # The GPU table's row, printed and in the JSON.
    assert data["gpu_table"]["device"].startswith("CPU") and data["gpu_table"]["esm2_mfu_datasheet"] is None
    printed = done.stdout.decode().splitlines()
    assert printed[0].startswith("| device |") and "not measured" in printed[2]


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
    assert overran["verdict"] == "fail" and "time limit" in overran["reason"] and time.monotonic() - began < 5
    assert acceptance.run_check("env", acceptance.check_environment, 60, ctx)["verdict"] == "pass"


class _SlowWarmUp:
    """An engine whose warm-up (compiling, in real life) takes longer than the check's whole limit."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def warm_up(self, _batch_tokens):
        import time

        time.sleep(self.seconds)
        return {"seconds": self.seconds, "compiled": True, "compile_seconds": self.seconds}


def test_warm_up_runs_outside_the_limit_and_is_charged_to_the_allowance(tmp_path):
    """A check whose measured work fits but whose warm-up alone is over its limit passes; its
    warm-up seconds are reported and charged to the run's compile allowance."""
    import time

    import torch

    from virnucpro.benchmark import engines
    from virnucpro.benchmark.acceptance import COMPILE_ALLOWANCE_S

    acceptance = _load_script()
    ctx = acceptance.Context(True, torch.device("cpu"), tmp_path, {})

    def check(_ctx):
        engines.warm_engine(_SlowWarmUp(1.5), "esm2", "bf16")
        time.sleep(0.3)  # the measured work: within the 1 s limit
        return {"verdict": "pass"}

    result = acceptance.run_check("warm", check, 1.0, ctx)
    assert result["verdict"] == "pass", result
    assert result["warmup_seconds"] >= 1.4 and ctx.compile_used_s >= 1.4 and result["seconds"] >= 1.8

    def overrun(_ctx):
        engines.warm_engine(_SlowWarmUp(0.2), "esm2", "bf16")
        time.sleep(30)
        return {"verdict": "pass"}

    began = time.monotonic()
    result = acceptance.run_check("overrun", overrun, 1.0, ctx)
    assert result["verdict"] == "fail" and "time limit" in result["reason"] and time.monotonic() - began < 5

    ctx.compile_used_s = COMPILE_ALLOWANCE_S - 0.1
    result = acceptance.run_check("no allowance left", check, 1.0, ctx)
    assert result["verdict"] == "fail" and "allowance" in result["reason"], result
