"""Scores per frame and calls per chunk: the published result tables (per sequence: :mod:`.per_sequence`).

Formats follow the published tool exactly (SPEC 7):

* ``prediction_results.txt``: ``Sequence_ID  Prediction  score1  score2`` per
  kept frame, score1 = P(others), score2 = P(virus), printed as ``str()`` of a
  numpy float32 (shortest round-trip text).
* ``prediction_results_highestscore.csv`` (tab-separated despite its name):
  ``Modified_ID  Is_Virus`` per chunk, the frame ID minus its two-character
  frame suffix, sorted as strings; ``True`` when the chunk's highest virus
  score >= its highest others score, each maximum taken separately.

Everything here streams: memory grows with one shard, never with the input.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np

from virnucpro.sequence import ids

PREDICTIONS_HEADER = "Sequence_ID\tPrediction\tscore1\tscore2\n"
HIGHEST_SCORE_HEADER = "Modified_ID\tIs_Virus\n"
LABELS = ("others", "virus")


@dataclass(frozen=True)
class FrameScore:
    """One row of ``prediction_results.txt``."""

    frame_id: str
    label: str
    score_others: str
    score_virus: str

    def line(self) -> str:
        return f"{self.frame_id}\t{self.label}\t{self.score_others}\t{self.score_virus}\n"


@dataclass(frozen=True)
class ContigRow:
    """One row of the work table ``contigs.tsv``: what the translate stage learnt about one input sequence."""

    sequence_id: str
    length: int
    chunks: int
    chunks_with_frames: int

    @property
    def status(self) -> str:
        if self.length == 0:
            return "empty_skipped"
        return "scored" if self.chunks_with_frames else "no_kept_frame"


def format_score(value: np.float32) -> str:
    """Text of a probability exactly as the published tool prints it (``str`` of float32)."""
    return str(np.float32(value))


def probabilities_from_logits(logits: np.ndarray) -> np.ndarray:
    """Float32 class probabilities from float64 logits ``[N, 2]``.

    Softmax runs in float64 and is rounded once to float32. Logits that are
    nearly equal are NOT forced to 0.5/0.5: the published tool writes whatever
    its float32 softmax gives (e.g. 0.5/0.49999997), and so do we; such
    "knife-edge" frames (|score2 - score1| < 1e-6) are decided by float noise
    in the published tool too.
    """
    logits = np.asarray(logits, dtype=np.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)


def frame_scores(frame_ids: Sequence[str], probabilities: np.ndarray) -> list[FrameScore]:
    """Turn an ``[N, 2]`` float32 probability array into result rows.

    The label is the arg-max class (ties go to ``others``, as ``argmax`` does).
    """
    probs = np.asarray(probabilities, dtype=np.float32)
    if probs.shape != (len(frame_ids), 2):
        raise ValueError(f"expected probabilities of shape ({len(frame_ids)}, 2), got {probs.shape}")
    labels = np.argmax(probs, axis=1)
    return [
        FrameScore(fid, LABELS[int(lab)], format_score(p[0]), format_score(p[1]))
        for fid, lab, p in zip(frame_ids, labels, probs)
    ]


def parse_score_line(line: str) -> FrameScore:
    """Inverse of :meth:`FrameScore.line`."""
    frame_id, label, s1, s2 = line.rstrip("\n").split("\t")
    return FrameScore(frame_id, label, s1, s2)


def read_score_file(path: Path) -> Iterator[FrameScore]:
    """Rows of a shard score file (no header)."""
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield parse_score_line(line)


@dataclass(slots=True)
class ChunkCall:
    """Per-chunk maxima of the two scores over its kept frames.

    ``min_virus`` and ``frames`` (the lowest virus score and the number of kept
    frames) are known when the call was grouped from frame rows, not when it was
    read back from a sorted chunk-call file.
    """

    chunk_id: str
    max_others: float
    max_virus: float
    min_virus: float = math.nan
    frames: int = 0

    @property
    def is_virus(self) -> bool:
        """The published call: highest virus score >= highest others score."""
        return self.max_virus >= self.max_others

    @property
    def chunk_score(self) -> np.float32:
        """``(max + min) / 2`` of the kept frames' virus scores, as float32.

        Since each frame's others score is ``1 - virus`` (up to rounding), the highest
        others score is ``1 - min virus``, so ``chunk_score >= 0.5`` exactly when
        :attr:`is_virus` (knife-edge chunks aside): the published call made continuous.
        """
        return np.float32((self.max_virus + self.min_virus) / 2)


def chunk_calls(rows: Iterable[FrameScore]) -> Iterator[ChunkCall]:
    """Group consecutive frame rows by chunk (frames of a chunk are always adjacent)."""
    current: ChunkCall | None = None
    for row in rows:
        chunk = ids.chunk_of_frame(row.frame_id)
        others, virus = float(np.float32(row.score_others)), float(np.float32(row.score_virus))
        if current is not None and current.chunk_id == chunk:
            current.max_others = max(current.max_others, others)
            current.max_virus = max(current.max_virus, virus)
            current.min_virus = min(current.min_virus, virus)
            current.frames += 1
            continue
        if current is not None:
            yield current
        current = ChunkCall(chunk, others, virus, virus, 1)
    if current is not None:
        yield current


def merge_sorted_chunk_calls(per_shard: Iterable[Iterable[ChunkCall]]) -> Iterator[ChunkCall]:
    """Merge per-shard chunk lists (each sorted by ID) into one sorted stream.

    A chunk whose frames straddle a shard boundary appears in two shards; the
    equal IDs meet in the merge and their maxima are combined.
    """
    current: ChunkCall | None = None
    for call in heapq.merge(*per_shard, key=lambda c: c.chunk_id):
        if current is not None and current.chunk_id == call.chunk_id:
            current = ChunkCall(
                call.chunk_id,
                max(current.max_others, call.max_others),
                max(current.max_virus, call.max_virus),
                float(np.fmin(current.min_virus, call.min_virus)),
                current.frames + call.frames,
            )
            continue
        if current is not None:
            yield current
        current = call
    if current is not None:
        yield current


def write_highest_score_rows(calls: Iterable[ChunkCall], out: TextIO) -> tuple[int, int]:
    """Write the per-chunk table body; returns (rows, rows called virus)."""
    rows = virus = 0
    for call in calls:
        out.write(f"{call.chunk_id}\t{call.is_virus}\n")
        rows += 1
        virus += call.is_virus
    return rows, virus
