"""Chunk every record and keep its six-frame translations without stops (stage 1's reader).

Two ways in:

* :func:`iter_chunk_frames` streams one :class:`ChunkFrames` per chunk (with
  its kept frames) for later stages such as ``predict``;
* :func:`translate_file` / :func:`main` (the ``translate`` command) write the
  three FASTA files of the published tool.

Records are translated in batches of about :data:`BATCH_BASES` bases (many
short records joined, or a slice of chunks of one long record), so numpy call
overhead is paid per batch, not per chunk, and working memory stays bounded.
Peak memory is about three times the largest record plus a few batches.

Output files (``<stem>`` from :func:`virnucpro.io.fasta.input_stem`):
``<stem>_chunked<C>.fa``, ``<stem>_identified_nucleotide.fa``,
``<stem>_identified_protein.faa``. Every record is written on one line
(no wrapping; the published chunk file wraps at 60, its other two files do
not). They are written under temporary names in the output directory and
renamed only after the whole input was read without error, so a failed run
leaves no output files.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from virnucpro.errors import InputError, OutputError
from virnucpro.io.fasta import FastaBytesRecord, FastaReader, display_name, input_stem, read_fasta_bytes
from virnucpro.sequence import ids
from virnucpro.sequence.chunking import chunk_starts
from virnucpro.sequence.sixframe import FRAME_SUFFIXES, KeptFrame, translate_windows

logger = logging.getLogger(__name__)

BATCH_BASES = 1 << 19
"""Target number of bases translated per numpy batch."""

_MAX_EMPTY_WARNINGS = 5
_SUFFIX_BYTES = tuple(s.encode("ascii") for s in FRAME_SUFFIXES)


@dataclass(frozen=True, slots=True)
class ContigInfo:
    """Length and chunk count of one input record (0 chunks when it was empty and skipped)."""

    id: str
    length: int
    chunks: int


@dataclass(slots=True)
class TranslateStats:
    """Counts gathered while chunking and translating (filled in as the input streams).

    Attributes:
        records: records read, empty ones included.
        skipped_empty: records skipped because their sequence was empty.
        bases: total sequence length of the records read.
        chunks: chunks made.
        chunks_with_kept_frame: chunks with at least one kept frame.
        kept_frames: kept frames (rows of the nucleotide/protein files).
        contigs: one :class:`ContigInfo` per record, in input order, appended when the
            record is read (before its chunks are yielded); a streaming consumer may
            pop finished records from the left to keep memory flat.
    """

    records: int = 0
    skipped_empty: int = 0
    bases: int = 0
    chunks: int = 0
    chunks_with_kept_frame: int = 0
    kept_frames: int = 0
    contigs: deque[ContigInfo] = field(default_factory=deque)

    def summary(self) -> str:
        """One line for the log."""
        return (
            f"{self.records} records ({self.skipped_empty} empty skipped), {self.bases} bp, "
            f"{self.chunks} chunks, {self.kept_frames} kept frames "
            f"({self.chunks_with_kept_frame} chunks with at least one)"
        )


@dataclass(frozen=True, slots=True)
class ChunkFrames:
    """One chunk and its kept frames.

    Attributes:
        record_id: ID of the input record.
        chunk_index: 1-based position of the chunk in its record.
        chunk_id: ``f"{record_id}_chunk_{chunk_index}"``.
        sequence: the chunk as in the input (case kept).
        frames: kept frames in the order F1..R3 (possibly none).
    """

    record_id: str
    chunk_index: int
    chunk_id: str
    sequence: str
    frames: list[KeptFrame]

    def frame_ids(self) -> list[str]:
        """IDs of the kept frames (``chunk_id`` + suffix), as used by every later stage."""
        return [ids.frame_id(self.chunk_id, frame.suffix) for frame in self.frames]


@dataclass(frozen=True, slots=True)
class TranslateOutputs:
    """The three files written by the translate stage."""

    chunked: Path
    nucleotide: Path
    protein: Path

    def all(self) -> tuple[Path, Path, Path]:
        return (self.chunked, self.nucleotide, self.protein)


def output_paths(
    input_path: str | os.PathLike[str], output_dir: str | os.PathLike[str], chunk_length: int
) -> TranslateOutputs:
    """Where :func:`translate_file` writes for this input, directory and chunk length."""
    stem = input_stem(input_path)
    out = Path(output_dir)
    return TranslateOutputs(
        chunked=out / f"{stem}_chunked{chunk_length}.fa",
        nucleotide=out / f"{stem}_identified_nucleotide.fa",
        protein=out / f"{stem}_identified_protein.faa",
    )


# -- the batch engine shared by both entry points ----------------------------------------


@dataclass(slots=True)
class _Batch:
    """Chunks of one or more records laid out as windows of one buffer.

    ``groups`` holds ``(record_id, first_chunk_index, count)`` per record part,
    covering the windows in order; ``kept`` is :func:`translate_windows` output.
    """

    buffer: bytes
    groups: list[tuple[str, int, int]]
    starts: list[int]
    ends: list[int]
    kept: list[tuple[int, int, bytes, bytes]]

    def chunk_labels(self) -> Iterator[tuple[str, int]]:
        """``(record_id, chunk_index)`` of every window, in order."""
        for record_id, first, count in self.groups:
            for k in range(first, first + count):
                yield record_id, k


def _iter_batches(
    records: Iterator[FastaBytesRecord], chunk_length: int, stats: TranslateStats, name: str
) -> Iterator[_Batch]:
    """Chunk records, group the chunks into batches and translate each batch."""
    parts: list[bytes] = []
    groups: list[tuple[str, int, int]] = []
    starts: list[int] = []
    ends: list[int] = []
    size = 0

    def flush() -> _Batch:
        nonlocal parts, groups, starts, ends, size
        buffer = parts[0] if len(parts) == 1 else b"".join(parts)
        batch = _Batch(buffer, groups, starts, ends, translate_windows(buffer, starts, ends))
        parts, groups, starts, ends, size = [], [], [], [], 0
        return batch

    for record in records:
        seq = record.sequence
        length = len(seq)
        stats.records += 1
        stats.bases += length
        if not length:
            stats.skipped_empty += 1
            stats.contigs.append(ContigInfo(record.id, 0, 0))
            if stats.skipped_empty <= _MAX_EMPTY_WARNINGS:
                logger.warning("%s: record '%s' has an empty sequence; skipped", name, record.id)
            continue
        record_starts = chunk_starts(length, chunk_length)
        n = len(record_starts)
        stats.chunks += n
        stats.contigs.append(ContigInfo(record.id, length, n))
        if length <= BATCH_BASES:
            offset = size
            parts.append(seq)
            size += length
            groups.append((record.id, 1, n))
            starts.extend([offset + s for s in record_starts])
            ends.extend([offset + chunk_length + s for s in record_starts])
            ends[-1] = offset + length  # only the last chunk is clipped (it ends the record)
            if size >= BATCH_BASES:
                yield flush()
            continue
        # A long record: translate its chunks in slices of about BATCH_BASES.
        if parts:
            yield flush()
        i = 0
        while i < n:
            base = record_starts[i]
            j = i + 1
            while j < n and record_starts[j] + chunk_length - base <= BATCH_BASES:
                j += 1
            stop = min(record_starts[j - 1] + chunk_length, length)
            parts = [seq[base:stop]]
            groups = [(record.id, i + 1, j - i)]
            starts = [s - base for s in record_starts[i:j]]
            ends = [min(s + chunk_length, length) - base for s in record_starts[i:j]]
            yield flush()
            i = j
    if parts:
        yield flush()
    if stats.skipped_empty > _MAX_EMPTY_WARNINGS:
        logger.warning(
            "%s: %d records with an empty sequence were skipped (first %d named above)",
            name, stats.skipped_empty, _MAX_EMPTY_WARNINGS,
        )
    if stats.records == 0:
        raise InputError(f"{name}: no FASTA records")
    if stats.chunks == 0:
        raise InputError(f"{name}: no sequence data (all {stats.records} records are empty)")


def iter_chunk_frames(
    input_path: str | os.PathLike[str], chunk_length: int, stats: TranslateStats | None = None
) -> Iterator[ChunkFrames]:
    """Stream every chunk of a FASTA input with its kept frames, in input order.

    The input is opened (and its start checked) when this function is called.
    Empty records are skipped with a warning. ``stats`` is updated as records
    are read; it is complete once the iterator is exhausted.

    Args:
        input_path: a FASTA path (plain, gzip, bzip2, xz) or ``-`` for stdin.
        chunk_length: chunk length ``C`` (>= 3).
        stats: optional :class:`TranslateStats` to fill in.

    Yields:
        One :class:`ChunkFrames` per chunk, chunks with no kept frame included.

    Raises:
        InputError: the input is unusable (see :mod:`virnucpro.io.fasta`).
    """
    _check_chunk_length(chunk_length)
    stats = stats if stats is not None else TranslateStats()
    reader = read_fasta_bytes(input_path)
    return _chunk_frames(reader, chunk_length, stats)


def _chunk_frames(reader: FastaReader, chunk_length: int, stats: TranslateStats) -> Iterator[ChunkFrames]:
    with reader:
        for batch in _iter_batches(reader, chunk_length, stats, reader.name):
            frames_of: dict[int, list[KeptFrame]] = {}
            for w, f, nucleotide, protein in batch.kept:
                frames_of.setdefault(w, []).append(
                    KeptFrame(FRAME_SUFFIXES[f], nucleotide.decode("ascii"), protein.decode("ascii"))
                )
            stats.kept_frames += len(batch.kept)
            stats.chunks_with_kept_frame += len(frames_of)
            buffer = batch.buffer
            for w, ((record_id, k), s, e) in enumerate(zip(batch.chunk_labels(), batch.starts, batch.ends)):
                yield ChunkFrames(
                    record_id, k, ids.chunk_id(record_id, k), buffer[s:e].decode("ascii"), frames_of.get(w, [])
                )


def _check_chunk_length(chunk_length: int) -> None:
    if chunk_length < 3:
        raise ValueError(f"chunk length must be at least 3, not {chunk_length}")


class _Numbers:
    """Cache of ``str(k).encode()`` for chunk numbers (header building is per chunk)."""

    def __init__(self) -> None:
        self._items: list[bytes] = [b"0"]

    def upto(self, last: int) -> list[bytes]:
        items = self._items
        if len(items) <= last:
            items.extend(b"%d" % k for k in range(len(items), last + 1 + 1024))
        return items


def _write_batch(
    batch: _Batch,
    chunk_out: BinaryIO,
    nuc_out: BinaryIO,
    prot_out: BinaryIO,
    stats: TranslateStats,
    numbers: _Numbers,
) -> None:
    """Write one batch to the three files (bytes throughout; one write per file)."""
    heads: list[bytes] = []
    for record_id, first, count in batch.groups:
        prefix = b">" + ids.chunk_id_prefix(record_id.encode("utf-8", "surrogateescape"))
        heads += [prefix + k for k in numbers.upto(first + count)[first : first + count]]
    buffer = batch.buffer
    lines: list[bytes] = [b""] * (2 * len(heads) + 1)
    lines[0:-1:2] = heads
    lines[1:-1:2] = [buffer[s:e] for s, e in zip(batch.starts, batch.ends)]
    chunk_out.write(b"\n".join(lines))
    kept = batch.kept
    if kept:
        frame_heads = [heads[w] + _SUFFIX_BYTES[f] for w, f, _, _ in kept]
        lines = [b""] * (2 * len(kept) + 1)
        lines[0:-1:2] = frame_heads
        lines[1:-1:2] = [k[2] for k in kept]
        nuc_out.write(b"\n".join(lines))
        lines[1:-1:2] = [k[3] for k in kept]
        prot_out.write(b"\n".join(lines))
        stats.chunks_with_kept_frame += len({k[0] for k in kept})
    stats.kept_frames += len(kept)


def translate_file(
    input_path: str | os.PathLike[str], output_dir: str | os.PathLike[str], chunk_length: int
) -> tuple[TranslateOutputs, TranslateStats]:
    """Chunk and translate a FASTA input into the three published FASTA files.

    Args:
        input_path: a FASTA path (plain, gzip, bzip2, xz) or ``-`` for stdin.
        output_dir: directory for the outputs (created if missing).
        chunk_length: chunk length ``C`` (>= 3).

    Returns:
        The paths written and the counts.

    Raises:
        InputError: the input is unusable; no output file is left behind.
        OutputError: the outputs cannot be written.
    """
    _check_chunk_length(chunk_length)
    stats = TranslateStats()
    outputs = output_paths(input_path, output_dir, chunk_length)
    reader = read_fasta_bytes(input_path)  # fails early, before anything is created
    out_dir = Path(output_dir)
    created_dir = not out_dir.exists()
    temps = [p.with_name(f".{p.name}.{os.getpid()}.tmp") for p in outputs.all()]
    handles: list[BinaryIO] = []
    try:
        with reader:
            try:
                out_dir.mkdir(parents=True, exist_ok=True)
                handles = [open(t, "wb", buffering=1 << 20) for t in temps]  # noqa: SIM115
            except OSError as exc:
                raise OutputError(f"{output_dir}: cannot write the outputs ({exc.strerror or exc})") from exc
            chunk_out, nuc_out, prot_out = handles
            numbers = _Numbers()
            try:
                for batch in _iter_batches(reader, chunk_length, stats, reader.name):
                    _write_batch(batch, chunk_out, nuc_out, prot_out, stats, numbers)
            except OSError as exc:  # the reader reports its own errors as InputError
                raise OutputError(f"{output_dir}: cannot write the outputs ({exc.strerror or exc})") from exc
        try:
            for handle in handles:
                handle.close()
            for temp, final in zip(temps, outputs.all()):
                os.replace(temp, final)
        except OSError as exc:
            raise OutputError(f"{output_dir}: cannot write the outputs ({exc.strerror or exc})") from exc
    except BaseException:
        for handle in handles:
            handle.close()
        for temp in temps:
            try:
                temp.unlink()
            except OSError:
                pass
        if created_dir:
            try:
                out_dir.rmdir()  # only succeeds when empty
            except OSError:
                pass
        raise
    return outputs, stats


def main(input_path: str, output_dir: str, chunk_length: int) -> None:
    """Entry point of ``virnucpro translate``: write the three files and log a summary."""
    outputs, stats = translate_file(input_path, output_dir, chunk_length)
    logger.info("translate %s: %s", display_name(input_path), stats.summary())
    logger.info("wrote %s, %s, %s", outputs.chunked, outputs.nucleotide, outputs.protein)
