"""The shard-overhead benchmark runs the real worker functions through the real queue, both depths."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from virnucpro.benchmark.shard_overhead import main, measure_shard_overhead


def test_shard_overhead_measures_both_paths_on_real_files() -> None:
    result = measure_shard_overhead(frames=200, dims=(768,), shards=3, compute_seconds=0.3, repeats=1)
    (entry,) = result["per_dim"]
    assert result["gpu"] == "not measured" and entry["dim"] == 768
    assert entry["prepare_seconds"] > 0 and entry["write_seconds"] > 0
    assert entry["unpipelined_wall_seconds"] >= 3 * 0.3
    assert entry["pipelined_outside_seconds"] <= entry["unpipelined_outside_seconds"] + 0.05
    assert entry["hidden"] is None or entry["hidden"] <= 1


def test_shard_overhead_command_line_refuses_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        main(["--dims", "1024"])
    assert main(["--frames", "50", "--shards", "2", "--compute-seconds", "0.1", "--dims", "768",
                 "--json", str(tmp_path / "o.json")]) == 0
    assert json.loads((tmp_path / "o.json").read_text())["per_dim"][0]["dim"] == 768
