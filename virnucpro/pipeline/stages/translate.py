"""Stage 1 of ``predict``: cut the input into shards of kept frames (or reuse verified ones).

Writes ``work/shards/shard-NNNNN.{dna.fa,protein.faa}`` (+ ``.done``; same IDs,
same order), each shard's reuse plans ``shard-NNNNN.<kind>.reuse.tsv`` (identical
frames are embedded once per length group, see :mod:`.reuse`), ``work/contigs.tsv`` and the shard index ``work/translate.json``
(+ ``.done``), all under ``RunConfig.translate_identity``.

``--min-length``: only records at least that long go into shards, grouped by
length (``ShardInfo.min_length``/``below``). A later run with a higher minimum
reuses every shard (assembly leaves the shorter records out); one with a lower
minimum re-reads the input, re-makes the existing groups' shards identically (so
their features and scores stay valid) and adds a new group for the lengths
``[new minimum, old minimum)``, numbered after the existing shards.

Tail split (``RunConfig.tail``, on several workers when the input's chunk count is known):
each length group's last shards shrink so the workers end together,
``run.setup.tail_shard_size`` of the frames estimated to be left. The estimate is the
group's frames not yet in a shard plus the chunks still to read times the group's
frames per chunk so far (from its first frame on): the same input gives the same cut
whatever else the run does, and the same cut again when a group is re-made.
"""

from __future__ import annotations

import hashlib
import io
import logging
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any

from virnucpro.errors import InputError
from virnucpro.io.fasta import FastaWriter
from virnucpro.pipeline.checkpoint import atomic_write, make_dir, read_done, verify_done, write_done
from virnucpro.pipeline.model_kinds import MODEL_KINDS, ModelKind
from virnucpro.pipeline.outputs import RunPaths
from virnucpro.pipeline.report.results import ContigRow
from virnucpro.pipeline.report.summary import RunCounts, RunState, StageReport
from virnucpro.pipeline.run.config import RunConfig, RunSetup
from virnucpro.pipeline.run.setup import TailPlan, tail_shard_size
from virnucpro.pipeline.stages.frames import TranslateStats, iter_chunk_frames
from virnucpro.pipeline.stages.reuse import ReusePlanner, sequence_digest
from virnucpro.pipeline.stages.work_files import (
    ShardInfo,
    read_shard_index,
    reuse_text,
    shard_index_text,
    write_contig_row,
    write_shard_index,
)
from virnucpro.pipeline.workqueue.feed import FeedCancelled
from virnucpro.sequence import ids

logger = logging.getLogger(__name__)

_ASSEMBLY_COUNTS = ("frames_virus", "chunks_virus", "virus_chunks", "published_virus_chunks", "chunks_scored")


def translate_stage(setup: RunSetup, state: RunState, on_shard: Callable[[ShardInfo], None] | None = None,
                    cancelled: Callable[[], bool] | None = None) -> None:
    """Fill ``state.shards`` and the translate counts, from verified files or by translating.

    Args:
        on_shard: called with each shard as soon as its files, its reuse plans and their
            ``.done`` markers exist (in index order when reused, as written when translating),
            so a caller can embed shard 1 while later shards are translated.
        cancelled: polled once per chunk; when it returns True the stage stops with
            :class:`~virnucpro.pipeline.workqueue.feed.FeedCancelled` (nothing half-written is kept).
    """
    paths, identity = setup.paths, setup.config.translate_identity()
    began = time.monotonic()
    report = state.stages["translate"] = StageReport()
    groups: list[tuple[int, int | None, int]] = []  # (min_length, below, first shard index) per length group
    min_length = setup.config.min_length
    if verify_done(paths.translate_index, identity):
        index = read_shard_index(paths.translate_index)
        groups = _length_groups(index.shards)
        covered = min((g[0] for g in groups), default=None)
        if covered is not None and covered > min_length:
            last = max((s.index for s in index.shards), default=0)
            groups.append((min_length, covered, last + 1))
            logger.info("translate: --min-length %d is below the earlier %d; adding shards for records of "
                        "%d-%d bp", min_length, covered, min_length, covered - 1)
        elif index.shards and all(_shard_files_ok(paths, s, identity) for s in index.shards):
            state.shards = index.shards
            # Virus counts come from the assembly (older indexes recorded a 0 for them).
            state.counts = RunCounts(**{k: v for k, v in index.counts.items() if k not in _ASSEMBLY_COUNTS})
            report.reused_shards = len(index.shards)
            report.seconds = time.monotonic() - began
            logger.info("translate: reusing %d verified shard(s) (%d kept frames)",
                        len(index.shards), state.counts.kept_frames)
            if on_shard is not None:
                for shard in index.shards:
                    on_shard(shard)
            return

    if not groups:
        groups = [(min_length, None, 1)]
    make_dir(paths.shards_dir)
    stats = TranslateStats()
    chunk_length, shard_size = setup.config.chunk_length, setup.config.shard_size

    writers = [_GroupWriter(paths, identity, shard_size, *g, on_shard=on_shard, tail=setup.config.tail)
               for g in groups]

    def translate_into_shards(contigs_table: IO[bytes]) -> None:
        # Contig rows are written as soon as a record's chunks have all passed, so memory
        # stays flat however many records the input holds.
        with_frames: dict[str, int] = {}
        read = 0  # chunks read (the tail split's position in the input)

        def write_finished_contigs(current: str | None = None) -> None:
            while stats.contigs and stats.contigs[0].id != current:
                contig = stats.contigs.popleft()
                row = ContigRow(contig.id, contig.length, contig.chunks, with_frames.pop(contig.id, 0))
                write_contig_row(contigs_table, row)

        for chunk in iter_chunk_frames(setup.options.input_path, chunk_length, stats):
            if cancelled is not None and cancelled():
                raise FeedCancelled("translate stopped: the embedding queue stopped")
            read += 1
            write_finished_contigs(chunk.record_id)
            if not chunk.frames:
                continue
            with_frames[chunk.record_id] = with_frames.get(chunk.record_id, 0) + 1
            length = stats.contigs[0].length  # the current record (finished ones were popped)
            writer = next((w for w in writers if w.holds_length(length)), None)
            if writer is not None:
                writer.add(chunk.chunk_id, chunk.frames, read)
        for writer in writers:
            writer.finish()
        state.shards.extend(sorted((s for w in writers for s in w.shards), key=lambda s: s.index))
        _check_groups(writers)
        write_finished_contigs()

    atomic_write(paths.contigs_table, translate_into_shards)
    state.counts = RunCounts(
        sequences=stats.records, skipped_empty=stats.skipped_empty, bases=stats.bases, chunks=stats.chunks,
        chunks_with_frames=stats.chunks_with_kept_frame, kept_frames=stats.kept_frames, shards=len(state.shards),
        **{_reused_count(kind): sum(w.reused[kind.name] for w in writers) for kind in MODEL_KINDS},
    )
    translate_counts = {k: v for k, v in asdict(state.counts).items() if k not in _ASSEMBLY_COUNTS}
    # An index that already verifies with these very bytes stays (its shard files were only
    # re-made, e.g. after a finished run removed them): nothing verified is ever rewritten.
    text = shard_index_text(state.shards, translate_counts)
    marker = read_done(paths.translate_index)
    unchanged = (marker is not None and marker.get("sha256") == hashlib.sha256(text.encode()).hexdigest()
                 and verify_done(paths.translate_index, identity))
    if not unchanged:
        write_shard_index(paths.translate_index, state.shards, translate_counts)
        write_done(paths.translate_index, identity, frames=stats.kept_frames)
    report.frames = stats.kept_frames
    report.computed_shards = len(state.shards)
    report.seconds = time.monotonic() - began
    logger.info("translate: %s; %d shard(s)", stats.summary(), len(state.shards))


def expected_shards(config: RunConfig, chunks: int | None) -> int | None:
    """The work an input of ``chunks`` chunks gives, in whole shards (None: unknown), counting
    about one kept frame per chunk as ``--shard-size auto`` does: ``ceil(chunks / shard_size)``.

    Without a tail split that is the shard count. With one it is a lower bound of the count
    (the tail's frames are cut into more, smaller shards) chosen on purpose: the queue starts
    no more workers than this, which is the tail plan's own worker count
    (``run.setup.resolve_tail_plan``), and the dashboard scales the work of the tasks known
    so far (full shards come first) up to it, which a count of the tail's small shards
    would overstate (8 workers, 1M frames: 151 shards for 100 shards' worth of frames)."""
    if chunks is None:
        return None
    return max(1, -(-chunks // config.shard_size))


def _length_groups(shards: list[ShardInfo]) -> list[tuple[int, int | None, int]]:
    """``(min_length, below, first shard index)`` of each length group of an index, in index order."""
    groups: dict[tuple[int, int | None], int] = {}
    for shard in shards:
        key = (shard.min_length, shard.below)
        groups[key] = min(groups.get(key, shard.index), shard.index)
    return sorted(((lo, below, first) for (lo, below), first in groups.items()), key=lambda g: g[2])


def _reused_count(kind: ModelKind) -> str:
    """The ``RunCounts`` field counting the frames whose ``kind`` embedding is reused."""
    return f"{kind.name}_reused_frames"


class _GroupWriter:
    """Cuts one length group's frames into shards numbered from ``first`` (the last ones smaller
    with a ``tail`` plan), and plans which frames reuse an identical earlier frame's embedding
    (:mod:`.reuse`, per model kind)."""

    def __init__(self, paths: RunPaths, identity: dict[str, Any], shard_size: int,
                 min_length: int, below: int | None, first: int,
                 on_shard: Callable[[ShardInfo], None] | None = None, tail: TailPlan | None = None) -> None:
        self.paths, self.identity, self.shard_size = paths, identity, shard_size
        self.min_length, self.below, self.next_index = min_length, below, first
        self.on_shard, self.tail = on_shard, tail
        self.target = shard_size  # frames of the shard being filled
        self.seen = self.written = 0  # frames of the group read so far / in written shards
        self.first_chunk = self.chunks_read = 0  # chunk (1-based) of the group's first frame / chunks read
        self.frames: list[tuple[str, str, str]] = []
        self.shards: list[ShardInfo] = []
        self.digests = {kind.name: bytearray() for kind in MODEL_KINDS}  # of the frames not yet in a shard
        self.planners = {kind.name: ReusePlanner() for kind in MODEL_KINDS}
        self.reused = {kind.name: 0 for kind in MODEL_KINDS}

    def holds_length(self, length: int) -> bool:
        return self.min_length <= length and (self.below is None or length < self.below)

    def add(self, chunk_id: str, frames: list[Any], chunks_read: int = 0) -> None:
        """Take one chunk's kept frames (``chunks_read``: the input's chunks read, this one included)."""
        self.first_chunk = self.first_chunk or chunks_read
        self.chunks_read = chunks_read
        self.seen += len(frames)
        for frame in frames:
            if not self.frames:
                self.target = self._next_size()
            self.frames.append((ids.frame_id(chunk_id, frame.suffix), frame.nucleotide, frame.protein))
            for kind in MODEL_KINDS:
                self.digests[kind.name] += sequence_digest(getattr(frame, kind.sequence))
            if len(self.frames) == self.target:
                self.flush()

    def _next_size(self) -> int:
        """The size of the shard about to start: ``shard_size``, or with a tail plan the share of
        the frames estimated to be left (read, not yet in a shard, plus the chunks still to read
        at the group's frames per chunk since its first frame)."""
        if self.tail is None:
            return self.shard_size
        span = max(1, self.chunks_read - self.first_chunk + 1)
        to_read = max(0, self.tail.chunks - self.chunks_read)
        remaining = self.seen - self.written + -(-self.seen * to_read // span)
        return tail_shard_size(remaining, self.shard_size, self.tail)

    def flush(self) -> None:
        """Write the shard of the frames held, then its reuse plans (final: every earlier shard of
        the group is planned), then hand it on (``on_shard``)."""
        if not self.frames:
            return
        shard = _write_shard(self.paths, self.next_index, self.frames, self.identity)
        info = ShardInfo(shard.index, shard.frames, self.min_length, self.below)
        for kind in MODEL_KINDS:
            borrowed = self.planners[kind.name].add_shard(shard.index, bytes(self.digests[kind.name]))
            _write_kept(kind.reuse(self.paths, shard.index), reuse_text(borrowed).encode(), self.identity,
                        len(borrowed))
            self.reused[kind.name] += len(borrowed)
            self.digests[kind.name] = bytearray()
        self.shards.append(info)
        self.written += len(self.frames)
        self.next_index += 1
        self.frames = []
        if self.on_shard is not None:
            self.on_shard(info)

    def finish(self) -> None:
        """Write the last shard."""
        self.flush()


def _check_groups(writers: list[_GroupWriter]) -> None:
    """Two length groups must never number a shard alike (an earlier group grew: the input changed)."""
    seen: set[int] = set()
    for writer in writers:
        for shard in writer.shards:
            if shard.index in seen:
                raise InputError(f"shard {shard.index} made twice: the input changed since the earlier run; "
                                 "re-run with --force")
            seen.add(shard.index)


def _write_shard(paths: RunPaths, index: int, frames: list[tuple[str, str, str]], identity: dict[str, Any]) -> ShardInfo:
    """Write one shard's DNA and protein files, keeping an identical verified file from a killed run."""
    for path, column in ((paths.shard_dna(index), 1), (paths.shard_protein(index), 2)):
        buffer = io.BytesIO()
        writer = FastaWriter(buffer)
        for frame in frames:
            writer.write(frame[0], frame[column])
        _write_kept(path, buffer.getvalue(), identity, len(frames))
    return ShardInfo(index, len(frames))


def _write_kept(path: Path, data: bytes, identity: dict[str, Any], frames: int) -> None:
    """Write a shard file and its marker, keeping an identical verified file (from a killed run)."""
    marker = read_done(path)
    if marker and marker.get("sha256") == hashlib.sha256(data).hexdigest() and verify_done(path, identity):
        return
    atomic_write(path, data)
    write_done(path, identity, frames=frames)


def _shard_files_ok(paths: RunPaths, shard: ShardInfo, identity: dict[str, Any]) -> bool:
    return all(
        verify_done(p, identity) and (read_done(p) or {}).get("frames") == shard.frames
        for p in (paths.shard_dna(shard.index), paths.shard_protein(shard.index))
    ) and all(verify_done(kind.reuse(paths, shard.index), identity) for kind in MODEL_KINDS)
