"""``merge`` calls every part at one set of report-only settings, as ``predict`` re-thresholds a run.

``--min-score``, ``--min-length`` and the region settings are report-only in
``predict``: a re-run with other values rewrites the tables from the scores and
recomputes nothing. ``merge`` does the same from the parts' tables, so parts
that differ only in these settings merge, and ``merge --min-score`` (etc.)
re-thresholds a merged result without re-running a part:

* ``contig_summary.tsv`` and ``chunk_scores.tsv`` are re-derived sequence by
  sequence from the chunk scores of ``chunk_scores.tsv`` (their text is
  ``str(float32)``, so the values, the sequence score and the call are exactly
  what ``predict`` computes: a merge at the parts' own settings is byte for byte
  the single run's tables);
* a sequence shorter than the merged ``--min-length`` becomes ``too_short``:
  its rows leave ``prediction_results.txt``, ``chunk_scores.tsv`` and the
  highest-score table, as in ``predict``. The merged ``--min-length`` is at least
  every part's (records below a part's were never scored there);
* ``viral_contigs.fa``: a part called at the merged settings is copied as it is;
  otherwise its virus sequences are taken from its own ``viral_contigs.fa`` when
  they are all in it (a raised threshold), else from its input file, which must
  still have the sha256 the part ran on.

Memory per part: the IDs of its virus sequences and of the sequences the merged
``--min-length`` newly excludes, no more.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO, cast

import numpy as np

from virnucpro.errors import RecallError
from virnucpro.pipeline.report import per_sequence, regions
from virnucpro.sequence import ids


@dataclass(frozen=True)
class CallSettings:
    """The report-only settings of a run (``run_summary.json`` ``calls``)."""

    min_score: float
    min_length: int
    region_gap: int
    region_min_chunks: int

    @classmethod
    def of_summary(cls, summary: dict[str, Any]) -> CallSettings:
        """A part's settings (the defaults for a part made before a setting existed)."""
        calls = summary.get("calls") or {}

        def value(key: str, default: float) -> Any:
            return default if calls.get(key) is None else calls[key]

        return cls(float(value("min_score", per_sequence.DEFAULT_MIN_SCORE)), int(value("min_length", 0)),
                   int(value("region_gap", regions.DEFAULT_REGION_GAP)),
                   int(value("region_min_chunks", regions.DEFAULT_REGION_MIN_CHUNKS)))


#: Option of each setting, for messages.
OPTION_OF = {"min_score": "--min-score", "min_length": "--min-length", "region_gap": "--region-gap",
             "region_min_chunks": "--region-min-chunks"}


def merged_settings(parts: Sequence[tuple[Path, CallSettings]], given: dict[str, Any]) -> CallSettings:
    """The settings of the merged run: each one ``given`` to merge, else the parts' shared value;
    ``--min-length``: the highest part's unless given (and never lower than that).

    Raises:
        RecallError: parts differ in a setting merge was not given, or ``--min-length`` is below a part's.
    """
    first_dir, first = parts[0]
    chosen: dict[str, Any] = {}
    for key in ("min_score", "min_length", "region_gap", "region_min_chunks"):
        wanted = given.get(key)
        if key == "min_length":
            top_dir, top = max(parts, key=lambda p: p[1].min_length)
            if wanted is not None and wanted < top.min_length:
                raise RecallError(f"{top_dir}: its records below {top.min_length} bp were never scored; merge "
                                  f"--min-length must be at least {top.min_length}")
            chosen[key] = top.min_length if wanted is None else wanted
            continue
        if wanted is not None:
            chosen[key] = wanted
            continue
        other = next(((d, s) for d, s in parts if getattr(s, key) != getattr(first, key)), None)
        if other is not None:
            raise RecallError(
                f"{other[0]}: part called at other settings than {first_dir} ({key}: "
                f"{json.dumps(getattr(other[1], key))} vs {json.dumps(getattr(first, key))}); give merge "
                f"{OPTION_OF[key]} to call every part at one value"
            )
        chosen[key] = getattr(first, key)
    return CallSettings(**chosen)


@dataclass
class Tally:
    """The merged run's counts that depend on the settings (recomputed, not summed)."""

    sequences_virus: int = 0
    sequences_not_virus: int = 0
    sequences_no_call: int = 0
    sequences_scored: int = 0
    too_short: int = 0
    virus_chunks: int = 0
    chunks_scored: int = 0
    frames_scored: int = 0
    frames_virus: int = 0
    published_virus_chunks: int = 0

    def counts(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class PartCalls:
    """What the re-derivation of one part's tables learnt."""

    virus_ids: list[str] = field(default_factory=list)  # sequences called virus, in input order
    excluded: set[str] = field(default_factory=set)  # scored by the part, too short for the merged run


_RECALLED = ("scored", "no_kept_frame")


def _rows(path: Path, headers: Sequence[str], run_dir: Path) -> Iterator[list[str]]:
    """The rows of a part's table whose header is one of ``headers`` (with or without the demo column)."""
    known = (*headers, *(per_sequence.table_header(h, True) for h in headers))
    with open(path, encoding="utf-8") as handle:
        if handle.readline() not in known:
            raise RecallError(f"{run_dir}: {path.name} does not start with a header merge knows "
                              "(made by an older virnucpro? re-run its predict command, which reuses every score)")
        for line in handle:
            yield line.rstrip("\n").split("\t")


def recall_part(run_dir: Path, contig_summary: Path, chunk_scores: Path, settings: CallSettings,
                summary_out: IO[str], chunks_out: IO[str], tally: Tally, demo: bool = False) -> PartCalls:
    """Write one part's ``contig_summary.tsv`` and ``chunk_scores.tsv`` rows (no headers) at ``settings``
    (``demo``: the parts were made by the demo models; rows end with the demo column).

    Raises:
        RecallError: the part's tables are not what predict writes, or disagree with each other.
    """
    found = PartCalls()
    chunk_rows = _rows(chunk_scores, (per_sequence.CHUNK_SCORES_HEADER, per_sequence.EARLIER_CHUNK_SCORES_HEADER),
                       run_dir)
    pending = next(chunk_rows, None)
    summary_headers = (per_sequence.CONTIG_SUMMARY_HEADER, per_sequence.PREVIOUS_CONTIG_SUMMARY_HEADER)
    for row in _rows(contig_summary, summary_headers, run_dir):
        try:
            seq_id, length, chunks, with_frames, _virus, _max, status = row[:7]
            size, chunk_count = int(length), int(chunks)
        except ValueError:
            raise RecallError(f"{run_dir}: malformed row in {contig_summary.name}: {row[:3]}") from None
        mine: list[list[str]] = []
        while pending is not None and pending[0] == seq_id:
            mine.append(pending)
            pending = next(chunk_rows, None)
        call = per_sequence.SequenceCall(None, None, per_sequence.NO_CALL)
        max_virus = None
        if status in _RECALLED and size < settings.min_length:
            status, with_frames = per_sequence.STATUS_TOO_SHORT, "0"
            found.excluded.add(seq_id)
        elif status in _RECALLED:
            scores = [np.float32(r[6]) for r in mine if r[6] != "NA"]
            call = per_sequence.call_from_chunk_scores(scores, settings.min_score)
            maxima = [np.float32(r[5]) for r in mine if r[5] != "NA"]
            max_virus = np.float32(max(maxima)) if maxima else None
            for r in mine:
                flag = "NA" if r[6] == "NA" else str(per_sequence.is_virus_chunk(np.float32(r[6]), settings.min_score))
                chunks_out.write(per_sequence.with_demo_column("\t".join(r[:7]) + f"\t{flag}\n", demo))
            tally.chunks_scored += chunk_count
            tally.virus_chunks += call.virus_chunks
        tally.too_short += status == per_sequence.STATUS_TOO_SHORT
        tally.sequences_scored += call.virus_score is not None
        if call.call == per_sequence.CALL_VIRUS:
            tally.sequences_virus += 1
            found.virus_ids.append(seq_id)
        elif call.call == per_sequence.CALL_NOT_VIRUS:
            tally.sequences_not_virus += 1
        else:
            tally.sequences_no_call += 1
        summary_out.write(per_sequence.summary_line(seq_id, size, chunk_count, int(with_frames), max_virus, status,
                                                    call, demo))
    if pending is not None:
        raise RecallError(f"{run_dir}: {chunk_scores.name} has rows of {pending[0]}, which {contig_summary.name} "
                          "does not list in that order")
    return found


def record_of_frame(frame_id: bytes) -> str:
    """The input record a ``prediction_results.txt`` frame ID belongs to."""
    return ids.record_of_chunk(ids.chunk_of_frame(frame_id.decode("utf-8")))


def copy_viral_records(fasta: Path, wanted: set[str], out: IO[bytes]) -> set[str]:
    """Copy the records of a part's ``viral_contigs.fa`` whose ID is in ``wanted``, byte for byte;
    returns the IDs copied."""
    copied: set[str] = set()
    keep = False
    with open(fasta, "rb") as handle:
        for line in handle:
            if line.startswith(b">"):
                words = line[1:].split(None, 1)
                record = words[0].decode("utf-8", "replace") if words else ""
                keep = record in wanted
                if keep:
                    copied.add(record)
            if keep:
                out.write(line)
    return copied


def write_viral_from_input(input_path: str, wanted: set[str], out: IO[bytes]) -> None:
    """Write the ``wanted`` records of a part's input as ``viral_contigs.fa`` does (in input order)."""
    from virnucpro.io.fasta import FastaWriter, read_fasta_bytes

    writer = FastaWriter(cast(BinaryIO, out), line_width=per_sequence.VIRAL_FASTA_WIDTH)
    with read_fasta_bytes(input_path) as reader:
        for record in reader:
            if record.id in wanted:
                writer.write(record.description or record.id, record.sequence)
