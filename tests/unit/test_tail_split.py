"""The tail split (issue 26): the last shards of a run on several workers are cut smaller, the
same way every time, and a run without one (one worker, a stream, an older run.json) is cut as before."""

from __future__ import annotations

import heapq
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from virnucpro.pipeline.outputs import RunPaths
from virnucpro.pipeline.run.config import RunConfig
from virnucpro.pipeline.run.options import PredictOptions
from virnucpro.pipeline.run.setup import (
    DevicePlan,
    ResolvedModels,
    TailPlan,
    planned_shard_sizes,
    resolve_tail_plan,
    tail_min_frames,
    tail_shard_size,
)
from virnucpro.pipeline.stages.frames import KeptFrame
from virnucpro.pipeline.stages.translate import _GroupWriter, expected_shards

SIZES = dict(frames=st.integers(0, 300_000), shard_size=st.integers(1, 12_000),
             workers=st.integers(2, 16), min_frames=st.integers(1, 12_000))


def _today(frames: int, shard_size: int) -> list[int]:
    """The cut before the tail split: full shards, the last one the remainder."""
    sizes = []
    while frames > 0:
        sizes.append(min(shard_size, frames))
        frames -= sizes[-1]
    return sizes


@settings(max_examples=300, deadline=None)
@given(**SIZES)
def test_the_plan_cuts_every_frame_once_and_shrinks_only_at_the_end(frames, shard_size, workers, min_frames):
    min_frames = min(min_frames, shard_size)
    sizes = planned_shard_sizes(frames, shard_size, TailPlan(workers, min_frames, frames))
    assert sum(sizes) == frames
    assert all(0 < s <= shard_size for s in sizes)
    assert all(a >= b for a, b in zip(sizes, sizes[1:]))  # non-increasing, so also in the tail
    assert all(s >= min_frames for s in sizes[:-1])  # only the final remainder may be smaller
    # the tail is the last TAIL_FACTOR x workers shards' worth of frames: before it, full shards
    full = [s for s in sizes if s == shard_size]
    assert sum(sizes) - sum(full) <= 2 * workers * shard_size


@settings(max_examples=300, deadline=None)
@given(**SIZES)
def test_equal_workers_taking_the_shards_in_order_end_within_one_tail_shard(frames, shard_size, workers,
                                                                            min_frames):
    """List scheduling on ``workers`` workers of equal speed: the first to run out of work waits
    at most ``min_frames`` frames' time for the last (without the split: up to a whole shard)."""
    min_frames = min(min_frames, shard_size)
    free = [0] * workers
    for size in planned_shard_sizes(frames, shard_size, TailPlan(workers, min_frames, frames)):
        heapq.heappush(free, heapq.heappop(free) + size)
    assert max(free) - min(free) <= min_frames


def test_without_a_plan_the_cut_is_todays():
    for frames in (0, 1, 59, 60, 61, 433, 10_000, 123_457):
        for shard_size in (1, 7, 60, 1_000):
            assert planned_shard_sizes(frames, shard_size, None) == _today(frames, shard_size)
            assert tail_shard_size(frames, shard_size, None) == shard_size


def test_an_example():
    # the tiny fixture's 433 frames, --shard-size 60, two CPU workers (500-bp chunks: 25 frames a batch)
    assert planned_shard_sizes(433, 60, TailPlan(2, 25, 432)) == [60, 60, 60, 60, 49, 36, 27, 25, 25, 25, 6]


def test_tail_min_is_one_esm_batch_of_full_chunks():
    # 500-bp chunks: 166 residues + BOS + EOS = 168 tokens a frame
    assert tail_min_frames(500, None, ["cpu", "cpu"]) == -(-4096 // 168)  # esm2.CPU_BATCH_TOKENS
    assert tail_min_frames(500, None, ["cuda:0", "cuda:1"]) == -(-65536 // 168)  # batching.MAX_BATCH_TOKENS
    assert tail_min_frames(300, 2048, ["cuda:0", "cuda:1"]) == -(-2048 // 102)
    assert tail_min_frames(500, 64, ["cpu", "cpu"]) == 1  # a budget below one frame: one frame a batch


def _options(**values) -> PredictOptions:
    return PredictOptions(input_path="in.fa", output_dir="out", **values)


def _plan(workers: int) -> DevicePlan:
    return DevicePlan(["cpu"] * workers, in_process=workers == 1, precision="fp32")


def test_the_plan_is_made_for_several_workers_on_a_counted_input_and_then_kept():
    fresh = resolve_tail_plan(_options(), None, 1_000, _plan(4), 60)
    assert fresh == TailPlan(4, tail_min_frames(500, None, ["cpu"]), 1_000)
    assert resolve_tail_plan(_options(), None, 1_000, _plan(1), 60) is None  # one worker: today's cut
    assert resolve_tail_plan(_options(), None, None, _plan(4), 60) is None  # a stream: chunk count unknown
    # no more workers than the input fills shards (the queue starts no more): 3 here, none at 1
    assert resolve_tail_plan(_options(), None, 150, _plan(8), 60) == TailPlan(3, fresh.min_frames, 150)
    assert resolve_tail_plan(_options(), None, 60, _plan(8), 60) is None
    recorded = {"shard_size": 60, "tail": fresh.as_params()}
    # resumed on other devices (and when the input check was skipped): the recorded plan
    assert resolve_tail_plan(_options(), recorded, None, _plan(1), 60) == fresh
    assert resolve_tail_plan(_options(), recorded, None, _plan(8), 60) == fresh
    # a run.json from before the tail split (or from one worker): no split, whatever the devices now
    assert resolve_tail_plan(_options(), {"shard_size": 60}, 1_000, _plan(4), 60) is None
    # --force starts afresh
    assert resolve_tail_plan(_options(force=True), {"shard_size": 60}, 1_000, _plan(2), 60) == TailPlan(
        2, fresh.min_frames, 1_000)
    assert TailPlan.from_params({"workers": 1, "min_frames": 5, "chunks": 9}) is None
    assert TailPlan.from_params("garbage") is None


MODELS = ResolvedModels(Path("esm.pt"), Path("dnabert"), Path("clf.pth"),
                        {"esm": {"name": "e", "sha256": "1", "dim": 8}, "dnabert": {"name": "d", "sha256": "2", "dim": 4},
                         "classifier": {"name": "c", "sha256": "3"}})


def _config(tail: TailPlan | None) -> RunConfig:
    return RunConfig.build(_options(shard_size=60), MODELS, _plan(2), "f" * 64, 60, tail)


def test_run_json_and_translate_identity_name_the_plan_only_when_there_is_one():
    before = {"work_format", "input_sha256", "chunk_length", "shard_size", "precision", "models"}
    plain = _config(None)
    assert set(plain.run_params()) == before  # what a run.json from before the tail split holds
    assert "tail" not in plain.translate_identity()
    tail = TailPlan(2, 25, 432)
    split = _config(tail)
    assert split.run_params()["tail"] == {"workers": 2, "min_frames": 25, "chunks": 432}
    assert split.translate_identity()["tail"] == tail.as_params()
    assert RunConfig.describe_differences(plain.run_params(), split.run_params()) == [
        "tail split of the last shards: none -> 2 workers, down to 25 frames"]
    assert RunConfig.describe_differences(split.run_params(), split.run_params()) == []


def _cut(tmp_path: Path, chunk_frames: list[int], shard_size: int, tail: TailPlan | None,
         length_of: list[bool] | None = None) -> list[int]:
    """The shard sizes a group writer cuts from chunks holding ``chunk_frames`` frames each (a
    chunk whose ``length_of`` entry is False belongs to another length group: read, not added)."""
    paths = RunPaths(tmp_path / f"run-{len(list(tmp_path.iterdir()))}")
    paths.shards_dir.mkdir(parents=True)
    writer = _GroupWriter(paths, {"test": 1}, shard_size, 0, None, 1, tail=tail)
    for read, count in enumerate(chunk_frames, start=1):
        if length_of is None or length_of[read - 1]:
            writer.add(f"c{read}_1", [KeptFrame(f"F{i}", "ACG" * 10, f"M{read}x{i}") for i in range(count)], read)
    writer.finish()
    return [s.frames for s in writer.shards]


def test_the_writer_cuts_the_plan_when_the_input_holds_a_frame_per_chunk(tmp_path):
    tail = TailPlan(2, 25, 433)
    assert _cut(tmp_path, [1] * 433, 60, tail) == planned_shard_sizes(433, 60, tail)
    assert _cut(tmp_path, [1] * 433, 60, None) == _today(433, 60)
    # two frames a chunk: the estimate follows the rate seen, and the cut stays within the rules
    sizes = _cut(tmp_path, [2] * 433, 60, tail)
    assert sum(sizes) == 866 and max(sizes) == 60 and min(sizes[:-1]) >= 25
    assert sizes == planned_shard_sizes(866, 60, tail)


def test_a_length_group_is_cut_from_its_own_frames_only(tmp_path):
    """A group re-made next to a new one (a lower --min-length) must be cut identically: its
    estimate counts every chunk read but only its own frames, from its first frame on."""
    counts = [1, 0, 2, 1, 3, 0, 1] * 200
    tail = TailPlan(3, 10, len(counts))
    alone = _cut(tmp_path, counts, 30, tail)
    assert _cut(tmp_path, counts, 30, tail) == alone  # deterministic
    late = [False] * 700 + [True] * 700  # a group whose records come only in the second half
    sizes = _cut(tmp_path, counts, 30, tail, late)
    assert sum(sizes) == sum(c for c, keep in zip(counts, late) if keep)
    # its rate is taken from its own span: full shards until its tail, not tail shards from the start
    assert sizes[:20] == [30] * 20 and 10 <= min(sizes[:-1]) < 30


def test_expected_shards_count_the_work_in_whole_shards():
    assert expected_shards(_config(None), 433) == 8  # ceil(433 / 60), as before
    tail = TailPlan(2, 25, 432)
    # with a tail split: a lower bound of the shard count, the shards' worth of frames
    assert expected_shards(_config(tail), 432) == 8 < len(planned_shard_sizes(432, 60, tail))
    assert expected_shards(_config(None), None) is None
