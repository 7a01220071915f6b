"""The benchmark's account of a streamed run: the stage code timed in both arrangements, same run."""

from __future__ import annotations

import pytest

from virnucpro.benchmark import streaming


@pytest.fixture(scope="module")
def account() -> dict:
    return streaming.measure_streamed_serial(60_000, 500, shard_size=40)


def test_both_arrangements_are_measured_in_one_run(account) -> None:
    measured = account["measured"]
    assert account["shards"] >= 2
    assert 0 < measured["first_shard_handed_out"] < measured["translate"]
    assert measured["walk_last_shard"] > 0 and measured["highest_score_merge"] > 0
    assert account["serial_arrangement_total"] == pytest.approx(sum(account["serial_arrangement"].values()))
    assert account["streamed_total"] == pytest.approx(sum(account["streamed"].values()))
    assert "streamed, overlapping nothing" in account["lines"][-1]


def test_scaling_keeps_per_shard_parts_and_scales_the_rest(account) -> None:
    scale = account["frames_per_run"] / account["frames"]
    measured = account["measured"]
    assert account["serial_arrangement"]["translate"] == pytest.approx(measured["translate"] * scale)
    assert account["streamed"]["translate_first_shard"] == measured["first_shard_handed_out"]
    assert account["streamed"]["walk_last_shard"] == measured["walk_last_shard"]


def test_serial_account_counts_what_overlaps_nothing_in_a_streamed_run(account) -> None:
    from virnucpro.benchmark.cpu_side import StageTiming, serial_account

    stages = [StageTiming("translate_stage", 1000, 0.5), StageTiming("assemble", 1000, 0.25),
              StageTiming("score_shard", 1000, 0.1)]
    streamed = serial_account(stages, frames=10_000, shard_size=1000, streamed=account)
    assert streamed["serial_seconds"] == account["streamed"]
    assert streamed["serial_seconds_total"] == pytest.approx(account["streamed_total"])
    assert streamed["serial_arrangement_seconds"] == pytest.approx(
        {"translate": 5.0, "assemble": 2.5, "score_last_shard": 0.1})
    assert account["lines"][-1] in streamed["lines"]
    assert streamed["serial_fraction"] is None and streamed["lines"][-1].endswith("not measured")
    # one GPU at 1,000 frames/s, 8 GPUs: the fraction is the streamed serial part against 1.25 s of GPU time
    with_gpu = serial_account(stages, gpu_frames_per_s=1000.0, frames=10_000, shard_size=1000, streamed=account)
    total = account["streamed_total"]
    assert with_gpu["serial_fraction"] == pytest.approx(total / (total + 10_000 / 8000))
    # without the streamed measurement, the per-core-rate arrangement is the serial part (older reports)
    plain = serial_account(stages, frames=10_000, shard_size=1000)
    assert plain["serial_seconds_total"] == pytest.approx(7.6) and plain["streamed"] is None


def test_shard_size_for_small_inputs_gives_several_shards() -> None:
    assert streaming.shard_size_for(300_000, 500) == 135  # ~540 kept frames in 4 shards
    assert streaming.shard_size_for(3_000_000_000, 500) == 10_000  # never above predict's default
    assert streaming.shard_size_for(100, 500) == 1
