"""Formats of the small work files of a run, each with its writer and reader side by side.

* ``work/contigs.tsv``: one line per input record, in input order:
  ``id  length  chunks  chunks_with_frames`` (no header). Written by the
  translate stage while the input streams; read when ``contig_summary.tsv`` is made.
* ``work/translate.json``: the shard index, ``{"shards": [{"index", "frames", "min_length", "below"}...],
  "counts": {...}}``. Written by the translate stage; read on resume and by
  ``features export``.
* ``work/shards/shard-NNNNN.<kind>.reuse.tsv``: the frames of a shard that reuse an
  identical earlier frame's embedding (see :mod:`virnucpro.pipeline.stages.reuse`):
  ``row  source_shard  source_row`` per borrowed frame, by row (no header; empty
  when none). Written by the translate stage; read by the workers, which record
  what they reused in the feature file.
* ``work/assembly/run-NNNNN.chunks.tsv``: one run of chunk calls sorted by
  chunk ID: ``chunk_id  max_others  max_virus`` (``repr`` of the floats, so
  they read back exactly); runs of many runs merged are numbered after them.
  Temporary, during assembly only.

Paths come from :class:`~virnucpro.pipeline.outputs.RunPaths`.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from virnucpro.pipeline.checkpoint import atomic_write, atomic_write_text
from virnucpro.pipeline.report.results import ChunkCall, ContigRow
from virnucpro.pipeline.stages.reuse import Borrowed

# --------------------------------------------------------------------------- contigs.tsv


def write_contig_row(handle: IO[bytes], row: ContigRow) -> None:
    """Append one record's line to an open ``contigs.tsv``."""
    line = f"{row.sequence_id}\t{row.length}\t{row.chunks}\t{row.chunks_with_frames}\n"
    handle.write(line.encode("utf-8"))


def read_contigs(path: Path) -> Iterator[ContigRow]:
    """The rows of ``contigs.tsv``, in input order."""
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            seq_id, length, chunks, with_frames = line.rstrip("\n").split("\t")
            yield ContigRow(seq_id, int(length), int(chunks), int(with_frames))


# --------------------------------------------------------------------------- translate.json


@dataclass
class ShardInfo:
    """One shard of kept frames, as recorded in the shard index.

    ``min_length``/``below``: the shard holds the frames of the records whose length is in
    ``[min_length, below)`` (``below`` None: no upper bound). A run with a lower
    ``--min-length`` than every earlier one adds shards for the newly included lengths
    (a new length group) instead of remaking the others.
    """

    index: int
    frames: int
    min_length: int = 0
    below: int | None = None

    def holds_length(self, length: int) -> bool:
        """Whether records of ``length`` bp belong to this shard's length group."""
        return self.min_length <= length and (self.below is None or length < self.below)


@dataclass(frozen=True)
class ShardIndex:
    """Contents of ``translate.json``: the shards in order and the translate counts."""

    shards: list[ShardInfo]
    counts: dict[str, int]


def shard_index_text(shards: Iterable[ShardInfo], counts: Mapping[str, int]) -> str:
    """The text of ``translate.json`` for these shards and counts."""
    index = {"shards": [asdict(s) for s in shards], "counts": dict(counts)}
    return json.dumps(index, indent=1) + "\n"


def write_shard_index(path: Path, shards: Iterable[ShardInfo], counts: Mapping[str, int]) -> None:
    """Write ``translate.json`` atomically (the caller adds its ``.done`` marker)."""
    atomic_write_text(path, shard_index_text(shards, counts))


def read_shard_index(path: Path) -> ShardIndex:
    """Read ``translate.json``.

    Raises:
        FileNotFoundError: there is none.
        OSError, ValueError, KeyError, TypeError: it is unreadable or malformed.
    """
    data: Any = json.loads(path.read_text(encoding="utf-8"))
    shards = [
        ShardInfo(int(s["index"]), int(s["frames"]), int(s.get("min_length", 0)),
                  None if s.get("below") is None else int(s["below"]))
        for s in data["shards"]
    ]
    counts = {str(k): int(v) for k, v in data["counts"].items()}
    return ShardIndex(shards, counts)


# --------------------------------------------------------------------------- reuse plans


def reuse_text(borrowed: Iterable[Borrowed]) -> str:
    """The text of one shard's reuse file."""
    return "".join(f"{b.row}\t{b.source_shard}\t{b.source_row}\n" for b in borrowed)


def read_reuse(path: Path) -> list[Borrowed]:
    """The borrowed frames listed in a reuse file, in row order.

    Raises:
        OSError, ValueError: it is missing, unreadable or malformed.
    """
    borrowed = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            row, shard, source_row = line.rstrip("\n").split("\t")
            borrowed.append(Borrowed(int(row), int(shard), int(source_row)))
    return borrowed


# --------------------------------------------------------------------------- sorted chunk calls


def write_sorted_chunk_calls(path: Path, calls: Iterable[ChunkCall]) -> None:
    """Write a run of chunk calls (already sorted by chunk ID) atomically, streaming."""
    def fill(handle: IO[bytes]) -> None:
        lines = (f"{c.chunk_id}\t{c.max_others!r}\t{c.max_virus!r}\n" for c in calls)
        for batch in iter(lambda: list(itertools.islice(lines, 4096)), []):
            handle.write("".join(batch).encode("utf-8"))

    atomic_write(path, fill)


def read_sorted_chunk_calls(path: Path) -> Iterator[ChunkCall]:
    """The calls of a file written by :func:`write_sorted_chunk_calls`, in file order."""
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            chunk_id, others, virus = line.rstrip("\n").split("\t")
            yield ChunkCall(chunk_id, float(others), float(virus))
