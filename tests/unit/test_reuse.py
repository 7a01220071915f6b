"""The reuse plan: every frame resolves to a row holding its own sequence, each sequence is embedded once."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from virnucpro.pipeline.stages.reuse import plan_reuse, sequence_digest
from virnucpro.pipeline.stages.work_files import read_reuse, reuse_text


def _split(seqs: list[str], sizes: list[int]) -> list[list[str]]:
    shards, start = [], 0
    for size in sizes:
        shards.append(seqs[start : start + size])
        start += size
    return shards


def _simulate(shards: list[list[str]], first_index: int = 1) -> tuple[dict, dict[int, list[str]]]:
    """Plan, then build each shard's 'feature file' (its owned sequences, in shard order) the way
    the workers do: every frame not in the plan gets a row."""
    digests = b"".join(sequence_digest(s) for shard in shards for s in shard)
    indexed = [(first_index + i, len(shard)) for i, shard in enumerate(shards)]
    plan = plan_reuse(digests, indexed)
    files = {}
    for (index, _), shard in zip(indexed, shards):
        skip = {b.row for b in plan[index]}
        files[index] = [s for row, s in enumerate(shard) if row not in skip]
    return plan, files


sequences = st.lists(st.sampled_from(["ACG", "TTT", "GGGA", "C", "ACGT"]), min_size=0, max_size=60)


@settings(max_examples=200, deadline=None)
@given(seqs=sequences, data=st.data())
def test_every_frame_resolves_to_its_own_sequence_and_each_sequence_is_embedded_once(seqs, data) -> None:
    sizes: list[int] = []
    left = len(seqs)
    while left:
        size = data.draw(st.integers(1, left))
        sizes.append(size)
        left -= size
    shards = _split(seqs, sizes)
    plan, files = _simulate(shards, first_index=data.draw(st.integers(1, 5)))
    embedded = [s for rows in files.values() for s in rows]
    assert sorted(embedded) == sorted(set(seqs))  # each distinct sequence exactly once
    for (index, borrowed), shard in zip(plan.items(), shards):
        assert [b.row for b in borrowed] == sorted(b.row for b in borrowed)
        for b in borrowed:
            assert b.source_shard <= index  # always an earlier shard, or an earlier row of this one
            assert files[b.source_shard][b.source_row] == shard[b.row]
    assert sum(len(b) for b in plan.values()) == len(seqs) - len(set(seqs))


def test_first_occurrence_owns_the_row_and_the_plan_reads_back(tmp_path) -> None:
    shards = [["AAA", "CCC", "AAA"], ["CCC", "GGG"], ["GGG", "AAA", "TTT"]]
    plan, files = _simulate(shards)
    assert files == {1: ["AAA", "CCC"], 2: ["GGG"], 3: ["TTT"]}
    assert [(b.row, b.source_shard, b.source_row) for b in plan[1]] == [(2, 1, 0)]
    assert [(b.row, b.source_shard, b.source_row) for b in plan[2]] == [(0, 1, 1)]
    assert [(b.row, b.source_shard, b.source_row) for b in plan[3]] == [(0, 2, 0), (1, 1, 0)]
    path = tmp_path / "shard-00003.esm.reuse.tsv"
    path.write_text(reuse_text(plan[3]))
    assert read_reuse(path) == plan[3]
    path.write_text(reuse_text([]))
    assert read_reuse(path) == []


def test_digest_count_must_match_the_frames() -> None:
    import pytest

    with pytest.raises(ValueError, match="2 digests for 3 frames"):
        plan_reuse(sequence_digest("A") + sequence_digest("C"), [(1, 3)])


@settings(max_examples=300, deadline=None)
@given(seqs=st.lists(st.sampled_from(["ACG", "TTT", "GGGA", "C", "ACGT", "A", "GG"]), max_size=80),
       data=st.data())
def test_shard_by_shard_planner_gives_the_whole_group_plan(seqs, data) -> None:
    """Streaming translate plans each shard as it is written: identical to the plan of the whole group."""
    from virnucpro.pipeline.stages.reuse import ReusePlanner

    sizes: list[int] = []
    left = len(seqs)
    while left:
        size = data.draw(st.integers(1, left))
        sizes.append(size)
        left -= size
    shards = _split(seqs, sizes)
    whole, _ = _simulate(shards, first_index=3)
    planner = ReusePlanner()
    for i, shard in enumerate(shards):
        assert planner.add_shard(3 + i, b"".join(sequence_digest(s) for s in shard)) == whole[3 + i]
