"""The GPU acceptance's workload, its limits from the work, and the GPU table rows."""

from __future__ import annotations

import pytest

from virnucpro.benchmark import acceptance as acc
from virnucpro.benchmark import flops


def test_the_gpu_workload_gives_esm2_eight_full_batches_at_one_length():
    work = acc.acceptance_workload(quick=False)
    assert work.esm_tokens == 168 and work.esm_tokens % 8 == 0  # 500 bp -> 166 aa + BOS + EOS
    per_batch = 65_536 // work.esm_tokens  # the largest budget the engine uses
    assert work.esm_frames // per_batch >= acc.MIN_FULL_BATCHES
    assert work.reference_frames < work.esm_frames // 10  # FP32 references small


def test_limits_come_from_the_work():
    """Twice the frames, about twice the scaled part; a faster device, a smaller limit."""
    work = acc.acceptance_workload(quick=False)
    h100, how = acc.benchmark_limit(work, "full", 989.4, 51.0, quick=False)
    faster, _ = acc.benchmark_limit(work, "full", 2 * 989.4, 2 * 51.0, quick=False)
    bigger = acc.Workload(2 * work.esm_frames, 2 * work.dnabert_frames, 2 * work.reference_frames, work.repeats)
    doubled, _ = acc.benchmark_limit(bigger, "full", 989.4, 51.0, quick=False)
    fixed = how["seconds"]["fixed"]
    assert doubled - fixed == pytest.approx(2 * (h100 - fixed))
    assert faster - fixed == pytest.approx((h100 - fixed) / 2, rel=0.05)
    esm = flops.SIZES["full"][0]
    assert how["flops"]["esm2_low"] == pytest.approx(3 * 3_200 * esm.sequence_flops(168))
    # On one H100 the benchmark's limit leaves room for the other checks and compiling within 8 minutes.
    assert h100 + acc.COMPILE_ALLOWANCE_S <= 470 - 180, how["seconds"]
    quick, _ = acc.benchmark_limit(acc.acceptance_workload(True), "small", 0.01, 0.05, quick=True)
    assert quick >= 60


def test_markdown_rows_name_the_device_and_say_not_measured():
    result = {"seconds_total": 400.0, "checks": {
        "environment": {"device": {"type": "cuda", "name": "NVIDIA H200"}, "matmul_peak": {"bf16": {"tflops": 760.0}}},
        "benchmark": {"engines": [
            {"model": "esm2", "implementation": "ours", "precision": "bf16", "frames_per_s": 600.0,
             "mfu_datasheet": 0.56, "mfu": 0.73, "full_batches": 8},
        ], "warmup": [], "speedup": {"factor": 12.5}},
    }}
    text = acc.markdown_rows(result)
    header, _rule, row = text.splitlines()
    assert header.startswith("| device | GPUs |") and len(header.split("|")) == len(row.split("|"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[0] == "H200 SXM" and "989.4" in cells and "56.0%" in cells and "73.0%" in cells
    assert "not measured" in cells  # DNABERT-S, predict, compile seconds: not in this result


def test_compiled_records_are_found_per_worker_and_model():
    """The pipeline check reads `compiled` wherever run_summary.json records it (issue 26 writes it)."""
    from virnucpro.benchmark.pipeline_check import compiled_records

    summary = {"compile": "auto", "workers": [
        {"device": "cuda:0", "models": {"esm2": {"compiled": True, "warm_up_seconds": 3.0},
                                        "dnabert_s": {"compiled": False}}},
    ]}
    assert compiled_records(summary) == [("/workers/0/models/esm2", True), ("/workers/0/models/dnabert_s", False)]
    assert compiled_records({"compile": "auto"}) == []
