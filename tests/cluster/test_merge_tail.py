"""A part predicted on several workers (its last shards cut smaller, issue 26) merges with parts
predicted on one: the tail plan is a per-part setting, like the shard size."""

from __future__ import annotations

import json

import pytest

from tests.cluster.conftest import predict, results_of
from tests.cluster.test_merge import merge, split

pytestmark = pytest.mark.slow


def test_parts_cut_with_and_without_a_tail_split_merge_into_the_single_run(tmp_path, small_inputs, single_runs):
    manifest = split(small_inputs["many"], 2, tmp_path / "parts")
    runs = []
    for part, extra in zip(manifest["parts"], (("--workers", "2", "--shard-size", "8"), ())):
        run_dir = tmp_path / "runs" / part["file"].removesuffix(".fa.gz")
        predict(tmp_path / "parts" / part["file"], run_dir, *extra)
        runs.append(run_dir)
    tails = [json.loads((run / "run.json").read_text())["params"].get("tail") for run in runs]
    assert tails[0] is not None and tails[0]["workers"] == 2 and tails[1] is None
    sizes = [s["frames"] for s in json.loads((runs[0] / "work" / "translate.json").read_text())["shards"]]
    assert max(sizes) == 8 and sizes[-2] < 8  # the tail was cut smaller
    result = merge(*map(str, runs), "-o", str(tmp_path / "merged"),
                   "--manifest", str(tmp_path / "parts" / "manifest.json"))
    assert result.returncode == 0, result.stderr.decode()
    # one frame per batch (--batch-tokens 1): no score depends on how its shard was cut
    assert results_of(tmp_path / "merged") == results_of(single_runs["many"])
