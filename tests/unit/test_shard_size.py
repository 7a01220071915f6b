"""--shard-size auto: about four shards per worker, bounded, and stable across a resume."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from virnucpro.pipeline.run.options import PredictOptions
from virnucpro.pipeline.run.setup import (
    AUTO_SHARD_MAX,
    AUTO_SHARD_MIN,
    SHARDS_PER_WORKER,
    DevicePlan,
    auto_shard_size,
    resolve_shard_size,
)


def _plan(workers: int) -> DevicePlan:
    return DevicePlan([f"cuda:{i}" for i in range(workers)], in_process=False, precision="bf16")


@given(frames=st.integers(0, 10**8), workers=st.integers(1, 64))
def test_auto_size_is_bounded_and_gives_every_worker_its_shards(frames: int, workers: int) -> None:
    size = auto_shard_size(frames, workers)
    assert AUTO_SHARD_MIN <= size <= AUTO_SHARD_MAX and size % 100 == 0
    shards = -(-frames // size)
    if AUTO_SHARD_MIN < size < AUTO_SHARD_MAX:
        # neither bound is in force: close to SHARDS_PER_WORKER shards per worker, never more
        assert shards <= workers * SHARDS_PER_WORKER
        assert shards >= workers * SHARDS_PER_WORKER * 0.8 - 1
    if size == AUTO_SHARD_MAX:
        assert shards >= workers * SHARDS_PER_WORKER * 0.99 or frames <= AUTO_SHARD_MAX


def test_examples() -> None:
    # 1M reads on 8 GPUs: the largest shards (100 of them, 12 per GPU)
    assert auto_shard_size(1_000_000, 8) == AUTO_SHARD_MAX
    # 60K frames on 8 GPUs: 32 shards of 1900 instead of 6 shards of 10000 (2 GPUs idle)
    assert auto_shard_size(60_000, 8) == 1_900
    assert auto_shard_size(500, 4) == AUTO_SHARD_MIN
    assert auto_shard_size(None, 4) == AUTO_SHARD_MAX  # a stream: the work is unknown


def test_given_size_wins_and_auto_keeps_an_earlier_runs_size_unless_forced() -> None:
    assert resolve_shard_size(PredictOptions("in", "out", shard_size=77), 5_000, 10**6, _plan(8)) == 77
    auto = PredictOptions("in", "out")
    assert resolve_shard_size(auto, 5_000, 60_000, _plan(8)) == 5_000  # resumed on other devices
    assert resolve_shard_size(auto, None, 60_000, _plan(8)) == 1_900
    forced = PredictOptions("in", "out", force=True)
    assert resolve_shard_size(forced, 5_000, 60_000, _plan(2)) == auto_shard_size(60_000, 2)
