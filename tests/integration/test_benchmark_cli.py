"""``virnucpro benchmark`` end to end in a subprocess: small size on the CPU, and --precision-check."""

from __future__ import annotations

import json

import pytest

from tests.conftest import REPO_ROOT, run_cli
from virnucpro.benchmark.report import ENGINE_KEYS, REQUIRED_KEYS

# End-to-end runs in subprocesses: part of `make test`, not of `make test-fast`.
pytestmark = pytest.mark.slow


def test_small_benchmark_writes_tables_and_valid_json(tmp_path):
    out = tmp_path / "bench.json"
    result = run_cli("benchmark", "--device", "cpu", "--frames", "3", "--json", str(out), timeout=300)
    assert result.returncode == 0, result.stderr.decode()
    stdout = result.stdout.decode()
    for title in ("Embedding engines", "Speed-up", "Precision drift", "CPU stages on one core", "Targets"):
        assert title in stdout
    text = out.read_text()
    assert "NaN" not in text and "Infinity" not in text  # strict JSON (json.loads would accept them)
    data = json.loads(text)
    assert all(key in data for key in REQUIRED_KEYS)
    assert data["schema"] == "virnucpro-benchmark/1" and data["size"] == "small"
    assert data["frames"]["total"] == 6
    engines = {(e["model"], e["implementation"], e["precision"]) for e in data["engines"]}
    assert engines == {(m, i, p) for m in ("esm2", "dnabert_s") for i, p in
                       (("ours", "fp32"), ("ours", "bf16"), ("published", "fp32"))}
    assert data["repeats"] == 3 and data["tokenize"]["dnabert_s"]["in_timed_passes"] is False
    # ESM-2 tokenising is outside the timed passes too, measured and shown on its own.
    esm_tokenize = data["tokenize"]["esm2"]
    assert esm_tokenize["in_timed_passes"] is False and esm_tokenize["frames"] == 6
    assert esm_tokenize["seconds"] > 0 and esm_tokenize["batches"] >= 1
    assert set(esm_tokenize["by_precision"]) == {"fp32", "bf16"}
    assert "Tokenising" in stdout
    for e in data["engines"]:
        if (e["model"], e["implementation"]) == ("esm2", "ours"):
            assert e["tokenize_seconds"] > 0 and e["batches_tokenized_in_timed_passes"] == 0
    for e in data["engines"]:
        assert all(key in e for key in ENGINE_KEYS)
        assert len(e["repeat_seconds"]) == 3 and e["seconds"] == min(e["repeat_seconds"])
        assert e["frames"] == 6 and e["tflops"] > 0 and e["mfu"] > 0 and e["peak_memory_bytes"] > 0
    assert data["speedup"]["pipeline"]["factor"] > 0
    assert data["baseline_agreement"]["esm2"]["cosine_min"] > 1 - 1e-5
    assert data["drift"][0]["precision"] == "bf16" and data["drift"][0]["labels"]["frames"] == 6
    assert data["cpu_side"]["threads"] == 1 and data["cpu_side"]["cores_needed"] >= 1
    assert "SPEC 8" in data["cpu_side"]["gpu_demand"]["source"]
    serial = data["cpu_side"]["serial"]
    assert serial["serial_seconds_total"] > 0 and serial["serial_fraction"] is None
    assert serial["serial_seconds"] == serial["streamed"]["streamed"] and serial["streamed"]["shards"] >= 2
    assert set(serial["serial_arrangement_seconds"]) == {"translate", "assemble", "score_last_shard"}
    assert any(line.startswith("streamed, overlapping nothing") for line in serial["lines"])
    assert "streamed, overlapping nothing" in stdout
    assert serial["lines"][-1] == "serial CPU share of the wall time: not measured"
    assert "serial CPU share of the wall time: not measured" in stdout
    assert [t["status"] for t in data["targets"]] == ["NOT MEASURED"] * 4


def test_usage_errors():
    result = run_cli("benchmark", "--precision-check", timeout=120)
    assert result.returncode == 2 and b"--input" in result.stderr
    result = run_cli("benchmark", "--precision", "int8", timeout=120)
    assert result.returncode == 2 and b"int8" in result.stderr


def test_precision_check_with_demo_models(tmp_path):
    out = tmp_path / "check.json"
    contigs = REPO_ROOT / "tests" / "data" / "tiny_reference" / "contigs.fa"
    result = run_cli("benchmark", "--precision-check", "--input", str(contigs), "--models", "demo",
                     "--sample", "20", "--device", "cpu", "--json", str(out),
                     env={"VIRNUCPRO_CACHE": str(tmp_path / "cache")}, timeout=300)
    assert result.returncode == 0, result.stderr.decode()
    data = json.loads(out.read_text())
    assert data["schema"] == "virnucpro-benchmark-precision-check/1"
    assert data["frames"] == 20 and data["frames_in_input"] >= 20
    (bf16,) = data["results"]
    assert bf16["precision"] == "bf16" and bf16["labels"]["frames"] == 20
    assert 0.99 < bf16["esm2"]["cosine_min"] <= 1.0 and 0.99 < bf16["dnabert_s"]["cosine_min"] <= 1.0
    assert "Against FP32" in result.stdout.decode()
