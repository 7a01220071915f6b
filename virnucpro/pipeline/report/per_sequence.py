"""The answer per input sequence: chunk scores, sequence scores and calls, the viral FASTA.

The published tool stops at a call per chunk; these files add the answer per
sequence without touching the two published tables.

This docstring is the one definition of the terms every file virnucpro adds
uses (``contig_summary.tsv``, ``chunk_scores.tsv``, ``viral_regions.*``, the
log lines, ``run_summary.json`` and MultiQC); the README points here:

* Chunk score: ``(max + min) / 2`` of the virus scores (``score2``) of the
  chunk's kept frames (:attr:`ChunkCall.chunk_score`); ``>= 0.5`` exactly when
  the published ``Is_Virus`` is True, knife-edge chunks aside.
* **Virus chunk**: a chunk with a kept frame whose chunk score is ``>= --min-score``,
  compared in float32 (:func:`is_virus_chunk`). One threshold for chunks and
  sequences: at the default 0.5 a virus chunk is a chunk the published table calls
  ``True`` (knife-edge chunks aside); at another ``--min-score`` only the two
  published tables (SPEC 7, format fixed) keep the published 0.5 call.
* Sequence score ``virus_score``: mean of the chunk scores of the chunks with a
  kept frame, rounded to float32; the call is ``virus`` when it is ``>= min_score``,
  ``not_virus`` otherwise, ``no_call`` when the sequence has no chunk with a kept
  frame or was not scored (``status``: ``empty_skipped``, ``too_short``, ``no_kept_frame``).

Formats:

* ``chunk_scores.tsv``: :data:`CHUNK_SCORES_HEADER`, one row per chunk of every
  scored sequence, in input order; ``start``/``end`` 1-based inclusive on the
  input sequence; ``NA`` scores for a chunk without a kept frame; ``virus_chunk``
  is ``True`` for a virus chunk (before issue 29 this column was ``is_virus``,
  the published call: :data:`EARLIER_CHUNK_SCORES_HEADER`).
* ``contig_summary.tsv``: :data:`CONTIG_SUMMARY_HEADER`: ``virus_chunks`` counts
  the virus chunks (named ``chunks_virus`` and counted at the published 0.5
  before issue 29), then ``status``, ``virus_score``, ``virus_chunk_fraction``
  (virus chunks / chunks with a kept frame) and ``call``. Columns keep their
  positions; new ones go after ``status``.
* ``viral_contigs.fa``: the sequences called ``virus``, header line and sequence
  as read, wrapped at :data:`VIRAL_FASTA_WIDTH`.
* Demo runs (``--models demo``): ``contig_summary.tsv``, ``chunk_scores.tsv`` and
  ``viral_regions.tsv`` end with one more column, :data:`DEMO_COLUMN`, whose
  value on every row is :data:`DEMO_VALUE` (a column, not a comment line: every
  reader, positional or by name, pandas' default included, still parses the
  table). The published tables and ``viral_contigs.fa`` have no place for a
  flag in their formats; ``NOTICE.txt`` beside them says it.

Every writer takes a stream of rows (``cluster/merge`` reuses them); memory
holds one sequence's chunk calls at most.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO, TextIO, cast

import numpy as np

from virnucpro.io.fasta import FastaBytesRecord, FastaWriter
from virnucpro.pipeline.report.results import ChunkCall, ContigRow, format_score
from virnucpro.sequence import ids
from virnucpro.sequence.chunking import chunk_bounds

CHUNK_SCORES_HEADER = (
    "sequence_id\tchunk\tstart\tend\tkept_frames\tmax_virus_score\tchunk_score\tvirus_chunk\n"
)
#: ``chunk_scores.tsv`` before issue 29: last column the published call (read by merge and plot).
EARLIER_CHUNK_SCORES_HEADER = CHUNK_SCORES_HEADER.replace("\tvirus_chunk\n", "\tis_virus\n")
#: Header of ``contig_summary.tsv`` before the per-sequence columns existed (recognised to say so).
EARLIER_CONTIG_SUMMARY_HEADER = (
    "sequence_id\tlength\tchunks\tchunks_with_frames\tchunks_virus\tmax_virus_score\tstatus\n"
)
#: ``contig_summary.tsv`` before issue 29 (``chunks_virus`` counted at the published 0.5).
PREVIOUS_CONTIG_SUMMARY_HEADER = (
    EARLIER_CONTIG_SUMMARY_HEADER.rstrip("\n") + "\tvirus_score\tvirus_chunk_fraction\tcall\n"
)
CONTIG_SUMMARY_HEADER = PREVIOUS_CONTIG_SUMMARY_HEADER.replace("\tchunks_virus\t", "\tvirus_chunks\t")
#: The column a demo run's own tables end with, and its value on every row.
DEMO_COLUMN, DEMO_VALUE = "models", "demo (scores meaningless)"
CALL_VIRUS, CALL_NOT_VIRUS, NO_CALL = "virus", "not_virus", "no_call"
CALLS = (CALL_VIRUS, CALL_NOT_VIRUS, NO_CALL)
STATUS_TOO_SHORT = "too_short"
VIRAL_FASTA_WIDTH = 60
DEFAULT_MIN_SCORE = 0.5


def with_demo_column(line: str, demo: bool, header: bool = False) -> str:
    """``line`` (a header or a row of one of the tables virnucpro adds) with the demo column when ``demo``."""
    if not demo:
        return line
    return f"{line.rstrip(chr(10))}\t{DEMO_COLUMN if header else DEMO_VALUE}\n"


def table_header(header: str, demo: bool) -> str:
    """The header of a table (``CONTIG_SUMMARY_HEADER``...) for a run with or without demo models."""
    return with_demo_column(header, demo, header=True)


def is_virus_chunk(chunk_score: float | np.float32 | None, min_score: float) -> bool:
    """A virus chunk: it has a chunk score (a kept frame) and it is ``>= min_score`` in float32."""
    return chunk_score is not None and bool(np.float32(chunk_score) >= np.float32(min_score))


@dataclass(frozen=True)
class SequenceCall:
    """Score and call of one input sequence (``virus_score`` None when there is none)."""

    virus_score: np.float32 | None
    virus_chunk_fraction: float | None
    call: str
    virus_chunks: int = 0


def call_sequence(calls: Sequence[ChunkCall], min_score: float) -> SequenceCall:
    """Score and call of a sequence from its chunks with a kept frame (grouped from frame rows)."""
    return call_from_chunk_scores([c.chunk_score for c in calls], min_score)


def call_from_chunk_scores(scores: Sequence[np.float32], min_score: float) -> SequenceCall:
    """Score and call of a sequence from the chunk scores of its chunks with a kept frame
    (as computed, or read back from ``chunk_scores.tsv``, whose text round-trips float32)."""
    if not scores:
        return SequenceCall(None, None, NO_CALL)
    score = np.float32(sum(float(s) for s in scores) / len(scores))
    virus = sum(is_virus_chunk(s, min_score) for s in scores)
    return SequenceCall(score, virus / len(scores), CALL_VIRUS if score >= min_score else CALL_NOT_VIRUS, virus)


@dataclass(frozen=True)
class SequenceResult:
    """Everything the per-sequence tables say about one input sequence.

    Attributes:
        contig: the translate stage's row (length, chunks, chunks with frames).
        status: ``scored``, ``no_kept_frame``, ``empty_skipped`` or ``too_short``.
        calls: chunk calls of its chunks with a kept frame, in chunk order (empty unless scored).
        call: its score and call.
    """

    contig: ContigRow
    status: str
    calls: Sequence[ChunkCall]
    call: SequenceCall
    min_score: float = DEFAULT_MIN_SCORE
    demo: bool = False  # made by the demo models: rows end with the demo column

    @property
    def scored(self) -> bool:
        return self.status not in ("empty_skipped", STATUS_TOO_SHORT)


def sequence_result(contig: ContigRow, calls: Sequence[ChunkCall], min_score: float,
                    too_short: bool = False, demo: bool = False) -> SequenceResult:
    """The result of one sequence (``too_short``: below ``--min-length``, so not scored; ``demo``:
    scored by the demo models)."""
    status = STATUS_TOO_SHORT if too_short and contig.length > 0 else contig.status
    if status == STATUS_TOO_SHORT:
        calls = []
    return SequenceResult(contig, status, calls, call_sequence(calls, min_score), min_score, demo)


def _text(value: np.float32 | None) -> str:
    return "NA" if value is None else format_score(value)


def contig_summary_line(result: SequenceResult) -> str:
    """One row of ``contig_summary.tsv``."""
    info, calls = result.contig, result.calls
    max_virus = np.float32(max(c.max_virus for c in calls)) if calls else None
    with_frames = 0 if result.status == STATUS_TOO_SHORT else info.chunks_with_frames
    return summary_line(info.sequence_id, info.length, info.chunks, with_frames, max_virus, result.status,
                        result.call, result.demo)


def summary_line(sequence_id: str, length: int, chunks: int, with_frames: int, max_virus: np.float32 | None,
                 status: str, call: SequenceCall, demo: bool = False) -> str:
    """One row of ``contig_summary.tsv`` from its values (the one place its columns are laid out)."""
    fraction = "NA" if call.virus_chunk_fraction is None else f"{call.virus_chunk_fraction:.6g}"
    return with_demo_column(
        f"{sequence_id}\t{length}\t{chunks}\t{with_frames}\t{call.virus_chunks}\t{_text(max_virus)}\t"
        f"{status}\t{_text(call.virus_score)}\t{fraction}\t{call.call}\n", demo)


def chunk_score_lines(result: SequenceResult, chunk_length: int) -> Iterator[str]:
    """Rows of ``chunk_scores.tsv`` for one sequence: every chunk when it was scored, none otherwise."""
    if not result.scored or result.contig.length == 0:
        return
    seq_id = result.contig.sequence_id
    by_id = {c.chunk_id: c for c in result.calls}
    for k, (start, end) in enumerate(chunk_bounds(result.contig.length, chunk_length), start=1):
        chunk = ids.chunk_id(seq_id, k)
        call = by_id.get(chunk)
        if call is None:
            yield with_demo_column(f"{seq_id}\t{chunk}\t{start + 1}\t{end}\t0\tNA\tNA\tNA\n", result.demo)
        else:
            yield with_demo_column(
                f"{seq_id}\t{chunk}\t{start + 1}\t{end}\t{call.frames}\t{format_score(np.float32(call.max_virus))}\t"
                f"{format_score(call.chunk_score)}\t{is_virus_chunk(call.chunk_score, result.min_score)}\n",
                result.demo)


def write_chunk_score_lines(lines: Iterable[str], out: TextIO, header: bool = True) -> int:
    """Write ``chunk_scores.tsv`` rows (from :func:`chunk_score_lines` or a part's file); returns the rows."""
    if header:
        out.write(CHUNK_SCORES_HEADER)
    n = 0
    for line in lines:
        out.write(line)
        n += 1
    return n


def write_viral_fasta(records: Iterable[FastaBytesRecord], out: IO[bytes]) -> int:
    """Write records as ``viral_contigs.fa`` does: the header line as read (``description``),
    the sequence in the input's case, wrapped at :data:`VIRAL_FASTA_WIDTH`; returns the count."""
    writer = FastaWriter(cast(BinaryIO, out), line_width=VIRAL_FASTA_WIDTH)
    for record in records:
        writer.write(record.description or record.id, record.sequence)
    return writer.count


def read_summary_calls(path: Path) -> Iterator[tuple[str, str, str]]:
    """``(sequence_id, status, call)`` of each row of a ``contig_summary.tsv``, in file order.

    Raises:
        ValueError: the file lacks the per-sequence columns (written by an older version).
    """
    with open(path, encoding="utf-8") as handle:
        header = handle.readline().rstrip("\n").split("\t")
        try:
            id_col, status_col, call_col = (header.index(c) for c in ("sequence_id", "status", "call"))
        except ValueError:
            raise ValueError(f"{path}: no 'call' column (made by an older virnucpro)") from None
        for line in handle:
            fields = line.rstrip("\n").split("\t")
            yield fields[id_col], fields[status_col], fields[call_col]
