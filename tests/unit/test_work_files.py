"""Work files: each reader reads back exactly what its writer wrote."""

from __future__ import annotations

import io
import json

import numpy as np

from virnucpro.pipeline.report.results import ChunkCall, ContigRow
from virnucpro.pipeline.stages.work_files import (
    ShardInfo,
    read_contigs,
    read_shard_index,
    read_sorted_chunk_calls,
    write_contig_row,
    write_shard_index,
    write_sorted_chunk_calls,
)


def test_contigs_table_round_trip(tmp_path):
    rows = [ContigRow("a b\u00e9", 1234, 3, 2), ContigRow("empty", 0, 0, 0), ContigRow("x_chunk_1", 5, 1, 0)]
    buffer = io.BytesIO()
    for row in rows:
        write_contig_row(buffer, row)
    path = tmp_path / "contigs.tsv"
    path.write_bytes(buffer.getvalue())
    assert buffer.getvalue().decode().splitlines()[0] == "a b\u00e9\t1234\t3\t2"
    assert list(read_contigs(path)) == rows


def test_shard_index_round_trip(tmp_path):
    path = tmp_path / "translate.json"
    shards = [ShardInfo(1, 30, 500), ShardInfo(2, 7, 500), ShardInfo(3, 5, 100, 500)]
    counts = {"sequences": 4, "kept_frames": 37}
    write_shard_index(path, shards, counts)
    assert json.loads(path.read_text())["shards"] == [
        {"index": 1, "frames": 30, "min_length": 500, "below": None},
        {"index": 2, "frames": 7, "min_length": 500, "below": None},
        {"index": 3, "frames": 5, "min_length": 100, "below": 500},
    ]
    index = read_shard_index(path)
    assert index.shards == shards and index.counts == counts
    assert [s.holds_length(n) for s in shards[1:] for n in (99, 100, 499, 500)] == [
        False, False, False, True, False, True, True, False]


def test_shard_index_without_length_groups_reads_as_one_group(tmp_path):
    """An index written before --min-length existed: every shard holds every length."""
    path = tmp_path / "translate.json"
    path.write_text(json.dumps({"shards": [{"index": 1, "frames": 3}], "counts": {}}))
    assert read_shard_index(path).shards == [ShardInfo(1, 3, 0, None)]


def test_sorted_chunk_calls_keep_float32_scores_exactly(tmp_path):
    path = tmp_path / "shard-00001.chunks.tsv"
    values = [float(np.float32(v)) for v in (0.1, 0.49999997, 1e-30, 1.0)]
    calls = [ChunkCall(f"c_chunk_{i}", v, 1 - v) for i, v in enumerate(values)]
    write_sorted_chunk_calls(path, calls)
    assert list(read_sorted_chunk_calls(path)) == calls
