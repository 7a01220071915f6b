"""The serial parts of a run in the benchmark: the real stage code timed on one core, and the
account for a 1M-frame run that never calls the GPU side measured unless it was."""

from __future__ import annotations

import pytest
import torch

from virnucpro.benchmark import cpu_side


@pytest.fixture(scope="module")
def run_stages() -> list[cpu_side.StageTiming]:
    return cpu_side.measure_run_stages(60_000, 500, shard_size=40)


def test_translate_score_and_assemble_are_timed_through_the_stages(run_stages):
    threads = torch.get_num_threads()
    assert [s.name for s in run_stages] == ["translate_stage", "score_shard", "assemble"]
    assert len({s.frames for s in run_stages}) == 1 and run_stages[0].frames > 40  # several shards
    assert all(s.seconds > 0 for s in run_stages)
    assert torch.get_num_threads() == threads


def test_the_account_without_a_gpu_says_not_measured(run_stages):
    account = cpu_side.serial_account(run_stages)
    rate = {s.name: s.frames_per_s for s in run_stages}
    serial = account["serial_seconds"]
    assert serial["translate"] == pytest.approx(1_000_000 / rate["translate_stage"])
    assert serial["assemble"] == pytest.approx(1_000_000 / rate["assemble"])
    assert serial["score_last_shard"] == pytest.approx(10_000 / rate["score_shard"])
    assert account["serial_seconds_total"] == pytest.approx(sum(serial.values()))
    assert account["gpu_seconds"] is None and account["serial_fraction"] is None
    assert "not measured" in account["lines"][-1] and "overlapping the GPUs: scoring" in account["lines"][0]


def test_the_account_with_a_measured_gpu_rate_gives_the_fraction(run_stages):
    account = cpu_side.serial_account(run_stages, gpu_frames_per_s=500.0)
    gpu_s = 1_000_000 / (8 * 500.0)
    assert account["gpu_seconds"] == pytest.approx(gpu_s)
    serial_s = account["serial_seconds_total"]
    assert account["serial_fraction"] == pytest.approx(serial_s / (serial_s + gpu_s))
    assert "target < 10%" in account["lines"][-1]
