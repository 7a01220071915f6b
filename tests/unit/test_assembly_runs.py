"""The highest-score table's external sort: many sorted runs merged down in groups give the same
stream as one merge of them all (virnucpro.pipeline.stages.assemble)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from virnucpro.pipeline.checkpoint import make_dir
from virnucpro.pipeline.outputs import RunPaths
from virnucpro.pipeline.report.results import ChunkCall, merge_sorted_chunk_calls
from virnucpro.pipeline.stages import assemble
from virnucpro.pipeline.stages.work_files import read_sorted_chunk_calls, write_sorted_chunk_calls

_CALL = st.tuples(st.sampled_from([f"c{k}_chunk_{j}" for k in range(6) for j in range(1, 4)]),
                  st.floats(0, 1, width=32), st.floats(0, 1, width=32))


def _key(call: ChunkCall) -> tuple[str, float, float]:
    return call.chunk_id, call.max_others, call.max_virus


@settings(max_examples=60, deadline=None)
@given(runs=st.lists(st.lists(_CALL, max_size=8), min_size=1, max_size=12), fan_in=st.integers(2, 4))
def test_merged_down_runs_give_the_same_calls(tmp_path_factory: pytest.TempPathFactory, runs, fan_in: int) -> None:
    paths = RunPaths(tmp_path_factory.mktemp("run"))
    make_dir(paths.assembly_dir)
    for k, run in enumerate(runs, 1):
        # A chunk straddling two shards appears in two runs: the merges must combine it the same way.
        write_sorted_chunk_calls(paths.sorted_chunk_calls(k), sorted((ChunkCall(*c) for c in run), key=_key))
    numbers = list(range(1, len(runs) + 1))
    expected = [_key(c) for c in merge_sorted_chunk_calls(read_sorted_chunk_calls(paths.sorted_chunk_calls(k))
                                                          for k in numbers)]
    original = assemble.MERGE_FAN_IN
    assemble.MERGE_FAN_IN = fan_in
    try:
        left = assemble._merge_runs_down(paths, numbers)
    finally:
        assemble.MERGE_FAN_IN = original
    assert len(left) <= fan_in
    got = [_key(c) for c in merge_sorted_chunk_calls(read_sorted_chunk_calls(paths.sorted_chunk_calls(k))
                                                     for k in left)]
    assert got == expected
    # Only the final runs are left on disk.
    assert sorted(p.name for p in Path(paths.assembly_dir).iterdir()) == sorted(
        paths.sorted_chunk_calls(k).name for k in left)
