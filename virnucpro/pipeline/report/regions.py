"""Viral regions inside a sequence, from its chunk scores (an addition to the published method).

The published method calls chunks; ``contig_summary.tsv`` adds one call per
sequence. A long bacterial contig with an integrated prophage gets a single
call there, so this module reports each run of virus chunks as a region.

The rule, on the rows of ``chunk_scores.tsv`` of one sequence (every chunk, in order):

* A *virus chunk* is defined once, in :mod:`.per_sequence`: its ``chunk_score`` is
  ``>= --min-score`` (float32); a chunk without a kept frame (``NA``) never is. It is
  the ``virus_chunk`` column of ``chunk_scores.tsv`` and what ``virus_chunks`` of
  ``contig_summary.tsv`` counts, so the tables agree at every ``--min-score``.
* Virus chunks separated by at most ``--region-gap`` other chunks (default 1)
  are merged into one region; a region starts and ends with a virus chunk.
* A region is reported when it holds at least ``--region-min-chunks`` virus
  chunks (default 2), or, for a sequence with fewer chunks than that, when
  every chunk of the sequence is a virus chunk (the region is then the whole
  sequence).
* ``start``/``end`` (1-based, inclusive) are the start of the region's first
  chunk and the end of its last chunk, as in ``chunk_scores.tsv``; chunks
  overlap as the published chunking makes them (SPEC 2), so a region's length
  is not a multiple of the chunk length. ``chunks`` counts every chunk in the
  region (gap chunks included), ``virus_chunks`` the virus ones; the mean
  (float32 of the float64 mean) and the max are over the chunk scores of the
  region's chunks that have one.

Files (one writer each, streamed sequence by sequence):

* ``viral_regions.tsv``: :data:`REGIONS_HEADER` (a demo run's ends with the demo
  column, see :mod:`.per_sequence`);
* ``viral_regions.bed``: BED6, 0-based half-open, name = region ID, score =
  ``round(1000 * mean_chunk_score)``, strand ``.`` (frames of both strands are scored);
* ``viral_regions.gff3``: GFF3, ``##sequence-region`` before the first region of
  each sequence, type ``region``, score = mean chunk score.

The settings are report-only like ``--min-score``: in no identity and not in
``run.json``, so a re-run with other values rewrites the tables and these files
and recomputes no shard.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TextIO
from urllib.parse import quote

import numpy as np

from virnucpro.pipeline.checkpoint import atomic_write
from virnucpro.pipeline.outputs import RunPaths
from virnucpro.pipeline.report import per_sequence
from virnucpro.pipeline.report.results import format_score
from virnucpro.pipeline.run.config import RunSetup

logger = logging.getLogger(__name__)

DEFAULT_REGION_GAP = 1
DEFAULT_REGION_MIN_CHUNKS = 2
REGIONS_HEADER = (
    "sequence_id\tregion_id\tstart\tend\tlength\tchunks\tvirus_chunks\tmean_chunk_score\tmax_chunk_score\n"
)
GFF_SOURCE = "virnucpro"
GFF_TYPE = "region"  # SO:0000001
#: Characters GFF3 allows unescaped in a seqid (everything else is %-escaped).
_GFF_SEQID_SAFE = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.:^*$@!+_?-|"
#: Characters escaped in a GFF3 attribute value: ``;=&,``, tab, newline, ``%`` and other controls.
_GFF_ATTR_SAFE = "".join(chr(c) for c in range(32, 127) if chr(c) not in ";=&,%")


@dataclass(frozen=True)
class ChunkScore:
    """One row of ``chunk_scores.tsv``: 1-based inclusive bounds and the chunk score (None for ``NA``)."""

    start: int
    end: int
    score: np.float32 | None


@dataclass(frozen=True)
class Region:
    """One viral region of a sequence (1-based inclusive bounds)."""

    sequence_id: str
    number: int
    start: int
    end: int
    chunks: int
    virus_chunks: int
    mean_score: np.float32
    max_score: np.float32

    @property
    def region_id(self) -> str:
        """``<sequence_id>_region_<k>`` (k 1-based within the sequence, like chunk IDs)."""
        return f"{self.sequence_id}_region_{self.number}"

    @property
    def length(self) -> int:
        return self.end - self.start + 1


def is_virus_chunk(chunk: ChunkScore, min_score: float) -> bool:
    """A virus chunk (:func:`.per_sequence.is_virus_chunk`, the one definition)."""
    return per_sequence.is_virus_chunk(chunk.score, min_score)


def region_spans(virus: Sequence[bool], gap: int, min_chunks: int) -> list[tuple[int, int]]:
    """Index ranges ``(first, last)`` (0-based, inclusive) of the regions of one sequence.

    Args:
        virus: per chunk in order, whether it is a virus chunk.
        gap: at most this many non-virus chunks between two merged virus chunks.
        min_chunks: virus chunks a region needs (a sequence with fewer chunks needs all of them).
    """
    if gap < 0 or min_chunks < 1:
        raise ValueError("gap must be >= 0 and min_chunks >= 1")
    need = min(min_chunks, len(virus))
    spans: list[tuple[int, int]] = []
    first = last = -1
    count = 0
    for k, hit in enumerate(virus):
        if not hit:
            continue
        if count and k - last - 1 <= gap:
            last, count = k, count + 1
            continue
        if count >= need:
            spans.append((first, last))
        first = last = k
        count = 1
    if count and count >= need:
        spans.append((first, last))
    return spans


def sequence_regions(sequence_id: str, chunks: Sequence[ChunkScore], min_score: float, gap: int,
                     min_chunks: int) -> list[Region]:
    """The regions of one sequence from its chunks (all of them, in order)."""
    virus = [is_virus_chunk(c, min_score) for c in chunks]
    regions = []
    for number, (first, last) in enumerate(region_spans(virus, gap, min_chunks), start=1):
        inside = chunks[first : last + 1]
        scores = [float(c.score) for c in inside if c.score is not None]
        regions.append(Region(
            sequence_id, number, inside[0].start, max(c.end for c in inside), len(inside),
            sum(virus[first : last + 1]), np.float32(sum(scores) / len(scores)), np.float32(max(scores)),
        ))
    return regions


def read_chunk_scores(path: Path) -> Iterator[tuple[str, list[ChunkScore]]]:
    """``(sequence_id, chunks)`` per sequence of a ``chunk_scores.tsv``, in file order (one in memory).

    Raises:
        ValueError: the file lacks the expected columns.
    """
    with open(path, encoding="utf-8") as handle:
        header = handle.readline().rstrip("\n").split("\t")
        try:
            cols = [header.index(c) for c in ("sequence_id", "start", "end", "chunk_score")]
        except ValueError:
            raise ValueError(f"{path}: not a chunk_scores.tsv (columns {header})") from None
        current: str | None = None
        chunks: list[ChunkScore] = []
        for line in handle:
            fields = line.rstrip("\n").split("\t")
            seq_id, start, end, score = (fields[c] for c in cols)
            if seq_id != current:
                if current is not None:
                    yield current, chunks
                current, chunks = seq_id, []
            chunks.append(ChunkScore(int(start), int(end), None if score == "NA" else np.float32(score)))
        if current is not None:
            yield current, chunks


def tsv_line(region: Region) -> str:
    """One row of ``viral_regions.tsv``."""
    return (f"{region.sequence_id}\t{region.region_id}\t{region.start}\t{region.end}\t{region.length}\t"
            f"{region.chunks}\t{region.virus_chunks}\t{format_score(region.mean_score)}\t"
            f"{format_score(region.max_score)}\n")


def bed_line(region: Region) -> str:
    """One BED6 row (0-based half-open; score 0-1000 from the mean chunk score)."""
    score = min(1000, max(0, round(1000 * float(region.mean_score))))
    return f"{region.sequence_id}\t{region.start - 1}\t{region.end}\t{region.region_id}\t{score}\t.\n"


def gff_sequence_region(sequence_id: str, length: int) -> str:
    """The ``##sequence-region`` line of a sequence of ``length`` bases."""
    return f"##sequence-region {_gff_seqid(sequence_id)} 1 {length}\n"


def gff_line(region: Region) -> str:
    """One GFF3 feature line (1-based inclusive, no strand, score = mean chunk score)."""
    attributes = ";".join(f"{key}={quote(value, safe=_GFF_ATTR_SAFE)}" for key, value in (
        ("ID", region.region_id), ("Name", region.region_id), ("chunks", str(region.chunks)),
        ("virus_chunks", str(region.virus_chunks)), ("mean_chunk_score", format_score(region.mean_score)),
        ("max_chunk_score", format_score(region.max_score)),
    ))
    return (f"{_gff_seqid(region.sequence_id)}\t{GFF_SOURCE}\t{GFF_TYPE}\t{region.start}\t{region.end}\t"
            f"{format_score(region.mean_score)}\t.\t.\t{attributes}\n")


def _gff_seqid(sequence_id: str) -> str:
    return quote(sequence_id, safe=_GFF_SEQID_SAFE)


@dataclass
class RegionWriters:
    """The three region files, written side by side while regions stream in."""

    tsv: TextIO
    bed: TextIO
    gff: TextIO
    count: int = 0
    demo: bool = False

    def begin(self, notice: str | None = None) -> None:
        """Headers; ``notice`` (the demo models' warning) as a comment line where the format has
        comments (GFF3, BED): the TSV stays header-first for its positional readers."""
        self.demo = bool(notice)
        self.tsv.write(per_sequence.table_header(REGIONS_HEADER, self.demo))
        self.gff.write("##gff-version 3\n")
        if notice:
            self.gff.write(f"# {notice}\n")
            self.bed.write(f"# {notice}\n")

    def write_sequence(self, sequence_length: int, regions: Iterable[Region]) -> None:
        """Write the regions of one sequence (nothing when it has none)."""
        for k, region in enumerate(regions):
            if k == 0:
                self.gff.write(gff_sequence_region(region.sequence_id, sequence_length))
            self.tsv.write(per_sequence.with_demo_column(tsv_line(region), self.demo))
            self.bed.write(bed_line(region))
            self.gff.write(gff_line(region))
            self.count += 1


def _text(fill: Callable[[TextIO], None]) -> Callable[[IO[bytes]], None]:
    def write(handle: IO[bytes]) -> None:
        text = io.TextIOWrapper(handle, encoding="utf-8", newline="")
        fill(text)
        text.flush()
        text.detach()
    return write


def write_regions(paths: RunPaths, min_score: float, gap: int = DEFAULT_REGION_GAP,
                  min_chunks: int = DEFAULT_REGION_MIN_CHUNKS, notice: str | None = None) -> int:
    """Write ``viral_regions.{tsv,bed,gff3}`` of a run from its ``chunk_scores.tsv``, atomically;
    returns the number of regions. Reads nothing else, so it re-runs on any finished run.
    ``notice``: the demo models' warning, a comment line of the BED and GFF3 files."""
    count = 0

    def fill_tsv(tsv: TextIO) -> None:
        def fill_bed(bed: TextIO) -> None:
            def fill_gff(gff: TextIO) -> None:
                nonlocal count
                writers = RegionWriters(tsv, bed, gff)
                writers.begin(notice)
                for seq_id, chunks in read_chunk_scores(paths.chunk_scores):
                    writers.write_sequence(max(c.end for c in chunks),
                                           sequence_regions(seq_id, chunks, min_score, gap, min_chunks))
                count = writers.count
            atomic_write(paths.regions_gff, _text(fill_gff))
        atomic_write(paths.regions_bed, _text(fill_bed))
    atomic_write(paths.regions_tsv, _text(fill_tsv))
    return count


def read_regions(path: Path) -> Iterator[tuple[str, int, int]]:
    """``(sequence_id, start, end)`` (1-based inclusive) of each row of a ``viral_regions.tsv``."""
    with open(path, encoding="utf-8") as handle:
        handle.readline()
        for line in handle:
            fields = line.rstrip("\n").split("\t")
            yield fields[0], int(fields[2]), int(fields[3])


def write_run_regions(setup: RunSetup) -> int:
    """:func:`write_regions` with the run's report-only settings (called after the assembly)."""
    config = setup.config
    notice = setup.models.notice if setup.models.demo else None
    count = write_regions(setup.paths, config.min_score, config.region_gap, config.region_min_chunks, notice)
    logger.info("%d viral region(s) (--region-gap %d, --region-min-chunks %d) in %s", count, config.region_gap,
                config.region_min_chunks, setup.paths.regions_tsv.name)
    return count
