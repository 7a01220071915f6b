"""Checks a ``predict`` run makes before it touches anything: options, then the whole input.

They run before the models are resolved (minutes with the published ones) and
before ``--force`` removes an earlier run, so a bad input or option costs a
fraction of a second and changes nothing on disk.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from dataclasses import dataclass

from virnucpro.errors import InputError, UsageError
from virnucpro.io.fasta import read_fasta_bytes
from virnucpro.io.fasta_open import STDIN, check_stream_open, display_name, is_stream
from virnucpro.pipeline.run.options import PredictOptions
from virnucpro.sequence.chunking import chunk_count

logger = logging.getLogger(__name__)

#: Shorter chunks are refused unless ``--allow-chunk-length`` (a 3-base chunk has one codon).
MIN_CHUNK_LENGTH = 30
_FASTA_LOGGER = "virnucpro.io.fasta"
#: The published classifier for short sequences (``-m 300``).
SHORT_MODEL_LENGTH = 300


def check_options(options: PredictOptions) -> None:
    """Refuse a chunk length that cannot be meant; warn when it is not the classifier's.

    Raises:
        UsageError: ``--chunk-length`` below :data:`MIN_CHUNK_LENGTH` without ``--allow-chunk-length``,
            or ``--keep-features`` with ``--discard-features``.
    """
    if options.keep_features and options.discard_features:
        raise UsageError("--keep-features and --discard-features contradict each other; give one")
    chunk_length = options.effective_chunk_length
    if chunk_length < MIN_CHUNK_LENGTH and not options.allow_chunk_length:
        raise UsageError(
            f"--chunk-length {chunk_length} is below {MIN_CHUNK_LENGTH} bp: the classifiers were trained on "
            f"300- and 500-bp chunks; add --allow-chunk-length if this is really meant"
        )
    published = options.models == "published" and options.model_path is None
    if published and chunk_length != options.model_type:
        logger.warning(
            "--chunk-length %d differs from the %d-bp chunks the %d classifier was trained on: its scores "
            "are not calibrated for this length (use -m 300 or -m 500 to match the chunks)",
            chunk_length, options.model_type, options.model_type,
        )


def warn_short_records(name: str, shorter: int, records: int, chunk_length: int) -> None:
    """Say once that most records are shorter than a chunk: each is then one short chunk, scored by a
    classifier trained on chunks of ``chunk_length`` bp (150-bp reads against the 500-bp model)."""
    hint = ("the published method has a 300-bp model for shorter sequences: use -m 300, or --min-length to "
            "leave the short ones unscored" if chunk_length > SHORT_MODEL_LENGTH else
            "--min-length leaves the short ones unscored")
    logger.warning("%s: %d of %d records are shorter than the %d-bp chunks, so each is scored as one shorter "
                   "chunk by a classifier trained on %d-bp chunks; %s",
                   name, shorter, records, chunk_length, chunk_length, hint)


@dataclass(frozen=True)
class CheckedInput:
    """What the input check learnt: a stream (read once, not resumable, not counted) or a file
    with ``chunks`` chunks at the run's chunk length (what shard sizing starts from)."""

    stream: bool
    chunks: int | None = None


def check_input(input_path: str, chunk_length: int | None = None) -> CheckedInput:
    """Read the whole input once and raise the reader's one-line error for the first problem.

    A stream (stdin, a named pipe, process substitution) can be read only once: only
    that it is open is checked here, the rest as the translate stage reads it.

    Args:
        chunk_length: count the chunks at this length (the result's ``chunks``).

    Raises:
        InputError: unusable input (format, protein, truncated FASTQ, empty, a bad character...).
    """
    if is_stream(input_path):
        check_stream_open(input_path)
        _check_stdin_not_empty(input_path)
        return CheckedInput(stream=True)
    records = with_sequence = chunks = shorter = 0
    with _quiet_reader_warnings(), read_fasta_bytes(input_path) as reader:
        for record in reader:
            records += 1
            if record.sequence:
                with_sequence += 1
                if chunk_length:
                    chunks += chunk_count(len(record.sequence), chunk_length)
                    shorter += len(record.sequence) < chunk_length
        name = reader.name
    if records == 0:
        raise InputError(f"{name}: no FASTA records")
    if with_sequence == 0:
        raise InputError(f"{name}: no sequence data (all {records} records are empty)")
    if chunk_length and shorter * 2 > with_sequence:
        warn_short_records(name, shorter, with_sequence, chunk_length)
    return CheckedInput(stream=False, chunks=chunks if chunk_length else None)


def _check_stdin_not_empty(input_path: str) -> None:
    """Raise the empty file's error now when standard input ends before its first byte.

    Standard input is peeked at, not read (the bytes stay in its buffer for the translate
    stage), so an empty pipe fails like an empty file: before any model is loaded and before
    the output directory is touched. Other streams (a named pipe) cannot be peeked at without
    consuming them; they are checked as they are read.
    """
    if input_path != STDIN:
        return
    buffer = getattr(sys.stdin, "buffer", None)
    peek = getattr(buffer, "peek", None)
    if peek is None:  # a replaced stdin (embedding program, tests)
        return
    try:
        head = peek(1)
    except (OSError, ValueError):
        return  # unreadable: the translate stage's read gives the one-line error
    if not head:
        raise InputError(f"{display_name(input_path)}: the input is empty")


@contextlib.contextmanager
def _quiet_reader_warnings() -> Iterator[None]:
    """The reader's warnings (RNA read as DNA...) are given once, by the translate stage."""
    reader_logger = logging.getLogger(_FASTA_LOGGER)
    previous = reader_logger.level
    reader_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        reader_logger.setLevel(previous)
