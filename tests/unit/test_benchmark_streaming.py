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
