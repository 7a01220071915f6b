"""Stage 5 of ``predict``: the result tables from the shard score files, in input order.

``work/contigs.tsv`` is walked in input order beside one stream of frame rows
per length group of shards (see :mod:`.translate`); records below
``--min-length`` are left out of every table but ``contig_summary.tsv``
(status ``too_short``). From that one ordered walk:

* ``prediction_results.txt``: the frame rows under the header;
* ``contig_summary.tsv`` and ``chunk_scores.tsv`` (:mod:`.per_sequence`);
* ``prediction_results_highestscore.csv``: chunk calls sorted in bounded runs
  into ``work/assembly/`` and k-way merged (memory: one run);
* ``viral_contigs.fa``: a second streaming pass over the input, which must
  still have the sha256 the run was accepted under.

Every table is written atomically; all of it depends on the score files and
the two report-only settings (``min_score``, ``min_length``), so re-thresholding a
finished run re-does only this stage. After success :func:`remove_intermediates`
drops what is large and cheap to remake.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any, BinaryIO, cast

from virnucpro.errors import InputError, OutputError
from virnucpro.io.fasta import FastaBytesRecord, FastaReader, FastaWriter
from virnucpro.io.fasta_open import is_stream
from virnucpro.log import helper_thread_name
from virnucpro.pipeline.checkpoint import atomic_write, hash_input, make_dir
from virnucpro.pipeline.outputs import RunPaths
from virnucpro.pipeline.report import per_sequence, results
from virnucpro.pipeline.report.summary import RunState, StageReport
from virnucpro.pipeline.run.config import RunSetup
from virnucpro.pipeline.run.options import PredictOptions
from virnucpro.pipeline.stages.work_files import (
    ShardInfo,
    read_contigs,
    read_sorted_chunk_calls,
    write_sorted_chunk_calls,
)
from virnucpro.sequence import ids

logger = logging.getLogger(__name__)

#: Chunk calls per sorted run of the external sort behind the highest-score table (about
#: 10 MiB held: a few shards' worth, whatever the input size).
SORT_RUN_CALLS = 50_000
#: Sorted runs merged at once; more runs are first merged in groups into longer runs.
MERGE_FAN_IN = 128


class _GroupRows:
    """The frame rows of one length group of shards, taken record by record in input order."""

    def __init__(self, paths: RunPaths, shards: list[ShardInfo], ready: Callable[[ShardInfo], None]) -> None:
        self._rows = (row for s in shards for row in _score_rows(paths, s, ready))
        self._next = next(self._rows, None)

    def take(self, record_id: str) -> Iterator[results.FrameScore]:
        while self._next is not None and ids.record_of_chunk(ids.chunk_of_frame(self._next.frame_id)) == record_id:
            yield self._next
            self._next = next(self._rows, None)

    def leftover(self) -> str | None:
        return None if self._next is None else self._next.frame_id


def _score_rows(paths: RunPaths, shard: ShardInfo, ready: Callable[[ShardInfo], None]) -> Iterator[results.FrameScore]:
    ready(shard)  # read only once the shard is scored (a streamed walk waits here)
    yield from results.read_score_file(paths.shard_scores(shard.index))


RecordRows = tuple[results.ContigRow, bool, Iterator[results.FrameScore]]


def _records(setup: RunSetup, shards: list[ShardInfo],
             ready: Callable[[ShardInfo], None] = lambda shard: None) -> Iterator[RecordRows]:
    """``(contig, too_short, frame rows)`` per input record in input order; rows are empty for a
    record below ``min_length``. Each row iterator must be consumed before the next record.
    ``ready(shard)`` is called before a shard's score file is read (it may wait for it).

    Raises:
        ValueError: the score files and ``contigs.tsv`` disagree.
    """
    paths, min_length = setup.paths, setup.config.min_length
    keys = sorted({(s.min_length, s.below) for s in shards}, key=lambda k: k[0])
    groups = [(key, _GroupRows(paths, [s for s in shards if (s.min_length, s.below) == key], ready))
              for key in keys]
    for contig in read_contigs(paths.contigs_table):
        too_short = contig.length < min_length
        holder = next((g for (lo, below), g in groups if lo <= contig.length and (below is None or contig.length < below)),
                      None)
        rows = holder.take(contig.sequence_id) if holder is not None else iter(())
        if too_short:
            for _ in rows:
                pass
            rows = iter(())
        yield contig, too_short, rows
        for _ in rows:  # whatever the consumer left
            pass
    for _, group in groups:
        left = group.leftover()
        if left is not None:
            raise ValueError(f"frame {left} matches no input sequence in order")


def _text_writer(fill: Callable[[io.TextIOWrapper], None]) -> Callable[[IO[bytes]], None]:
    def write(handle: IO[bytes]) -> None:
        text = io.TextIOWrapper(handle, encoding="utf-8", newline="")
        fill(text)
        text.flush()
        text.detach()
    return write


def assemble(setup: RunSetup, state: RunState, on_table: Callable[[], None] | None = None,
             walk: AssemblyWalk | None = None) -> None:
    """Write every result table and record the virus counts in ``state``.

    Args:
        on_table: called after the tables of the walk, then after each later table, are in
            place (the run's stop check: a stop signal ends the assembly there; a re-run writes
            every table again).
        walk: the walk over the records, started earlier on its thread to keep pace with the
            scoring (:meth:`AssemblyWalk.start`); None: walked here.
    """
    def table_done() -> None:
        if on_table is not None:
            on_table()

    paths, counts = setup.paths, state.counts
    began = time.monotonic()
    if walk is None:
        walk = AssemblyWalk(setup, state)
        walk.run()
    else:
        began = walk.began
        walk.join()
    counts.frames_virus, counts.frames_scored = walk.frames_virus, walk.frames_scored
    table_done()

    runs = _merge_runs_down(paths, list(range(1, walk.sort_runs + 1)))

    def write_highest(text: io.TextIOWrapper) -> None:
        text.write(results.HIGHEST_SCORE_HEADER)
        merged = results.merge_sorted_chunk_calls(read_sorted_chunk_calls(paths.sorted_chunk_calls(k)) for k in runs)
        _rows, counts.published_virus_chunks = results.write_highest_score_rows(merged, text)

    atomic_write(paths.highest_score, _text_writer(write_highest))
    shutil.rmtree(paths.assembly_dir, ignore_errors=True)
    table_done()

    tally = walk.tally
    counts.sequences_virus = tally[per_sequence.CALL_VIRUS]
    counts.sequences_not_virus = tally[per_sequence.CALL_NOT_VIRUS]
    counts.sequences_no_call = tally[per_sequence.NO_CALL]
    counts.sequences_scored, counts.too_short = walk.scored, walk.too_short
    counts.virus_chunks, counts.chunks_scored = walk.virus_chunks, walk.chunks_scored
    state.viral_fasta = _check_viral_fasta(setup, walk)
    # Busy time: a streamed walk's waits for the scores are not assembly work.
    state.stages["assemble"] = StageReport(seconds=time.monotonic() - began - walk.waited,
                                           frames=counts.frames_scored)


class _Attributed:
    """One table's handle for the walk, which writes four at once: a write error names this
    table (inside the nested atomic writes it would otherwise be blamed on the innermost file)."""

    def __init__(self, handle: Any, path: Path) -> None:
        self._handle, self._path = handle, path

    def write(self, data: Any) -> Any:
        try:
            return self._handle.write(data)
        except OSError as exc:
            raise OutputError(f"cannot write {self._path}: {exc.strerror or exc}") from exc

    def writelines(self, lines: Iterable[Any]) -> None:
        for line in lines:
            self.write(line)


class WalkCancelled(Exception):
    """The run stopped while a streamed walk waited for a shard's scores."""


class AssemblyWalk:
    """One walk over the records in input order, writing ``prediction_results.txt``,
    ``contig_summary.tsv``, ``chunk_scores.tsv`` and the sorted runs of chunk calls.

    :meth:`run` walks here; :meth:`start` walks on a thread, waiting for each shard's score
    file to verify before reading it (shards are scored as ESM-2 finishes them), so when the
    last shard is scored only its rows are left to walk. Tables are written atomically: a
    cancelled walk leaves none of them.
    """

    POLL_SECONDS = 0.05

    def __init__(self, setup: RunSetup, state: RunState) -> None:
        self.setup, self.state = setup, state
        self.began = time.monotonic()
        self.sort_runs = 0
        self.viral = 0  # sequences called virus
        self.tally = dict.fromkeys(per_sequence.CALLS, 0)
        self.too_short = self.scored = 0
        self.virus_chunks = self.chunks_scored = 0  # of the scored sequences (per_sequence's definition)
        self.frames_virus = self.frames_scored = 0
        self.waited = 0.0  # seconds spent waiting for score files
        self.viral_fasta = False  # written by the walk
        self.input_stat: tuple[int, int, int] | None = None  # the input's (inode, size, mtime) as it was read
        self._cancel = threading.Event()
        self._publish = threading.Event()  # a started walk renames its tables only once this is set
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._wait = False

    def start(self) -> None:
        """Walk on a thread, keeping pace with the scoring."""
        self._wait = True
        self._thread = threading.Thread(target=self._run_caught, name=helper_thread_name("assemble"), daemon=True)
        self._thread.start()

    def cancel(self) -> None:
        """Stop a started walk (it raises :class:`WalkCancelled` on its thread) and wait for it."""
        self._cancel.set()
        if self._thread is not None:
            self._thread.join()

    def join(self) -> None:
        """Let a started walk put its tables in place (the assemble stage has begun), wait for it;
        raises what it raised. Until then a walk that caught up holds its complete tables under
        temporary names, so a run stopped before this boundary has published none."""
        self._publish.set()
        if self._thread is not None:
            self._thread.join()
        if self._error is not None:
            raise self._error

    def _run_caught(self) -> None:
        try:
            self.run()
        except BaseException as exc:  # noqa: BLE001 - raised by join() in the main thread
            self._error = exc

    def _ready(self, shard: ShardInfo) -> None:
        if not self._wait:
            return
        from virnucpro.pipeline.checkpoint import verify_done
        from virnucpro.pipeline.stages.score import score_identity

        path = self.setup.paths.shard_scores(shard.index)
        marker = path.with_name(path.name + ".done")
        identity = None
        began = time.monotonic()
        try:
            while True:
                if self._cancel.is_set():
                    raise WalkCancelled("the run stopped")
                if marker.exists():
                    identity = identity or score_identity(self.setup, shard)
                    if verify_done(path, identity):
                        return
                self._cancel.wait(self.POLL_SECONDS)
        finally:
            self.waited += time.monotonic() - began

    def run(self) -> None:
        """Walk every record once and write the three tables and the sorted runs."""
        paths, config = self.setup.paths, self.setup.config
        make_dir(paths.assembly_dir)
        shards = self.state.shards

        def walk(predictions: Any, chunk_text: Any, summary_text: Any, viral_out: FastaWriter | None,
                 inputs: Iterator[FastaBytesRecord]) -> None:
            predictions.write(results.PREDICTIONS_HEADER)
            demo = self.setup.models.demo  # demo runs' tables end with a column that says so
            summary_text.write(per_sequence.table_header(per_sequence.CONTIG_SUMMARY_HEADER, demo))
            chunk_text.write(per_sequence.table_header(per_sequence.CHUNK_SCORES_HEADER, demo))
            frames = virus = 0
            pending: list[results.ChunkCall] = []
            for contig, short, rows in _records(self.setup, shards, self._ready):
                rows_of_record = list(rows)
                for row in rows_of_record:
                    predictions.write(row.line())
                frames += len(rows_of_record)
                virus += sum(row.label == "virus" for row in rows_of_record)
                calls = list(results.chunk_calls(iter(rows_of_record)))
                result = per_sequence.sequence_result(contig, calls, config.min_score, too_short=short, demo=demo)
                summary_text.write(per_sequence.contig_summary_line(result))
                chunk_text.writelines(per_sequence.chunk_score_lines(result, config.chunk_length))
                self.tally[result.call.call] += 1
                self.too_short += result.status == per_sequence.STATUS_TOO_SHORT
                self.scored += result.call.virus_score is not None
                self.virus_chunks += result.call.virus_chunks
                self.chunks_scored += contig.chunks if result.scored else 0
                record = next(inputs, None) if viral_out is not None else None  # the input, in lock-step
                if result.call.call == per_sequence.CALL_VIRUS:
                    self.viral += 1
                    if viral_out is not None:
                        if record is None:
                            raise InputError(f"{self.setup.options.input_path}: the input changed during the "
                                             "run; re-run with --force")
                        viral_out.write(record.description or record.id, record.sequence)
                pending.extend(calls)
                if len(pending) >= SORT_RUN_CALLS:
                    self.sort_runs += 1
                    write_sorted_chunk_calls(paths.sorted_chunk_calls(self.sort_runs),
                                             sorted(pending, key=_chunk_key))
                    pending = []
            if pending or not self.sort_runs:
                self.sort_runs += 1
                write_sorted_chunk_calls(paths.sorted_chunk_calls(self.sort_runs), sorted(pending, key=_chunk_key))
            self.frames_virus, self.frames_scored = virus, frames
            while self._wait and not self._publish.is_set():  # the tables are renamed when this returns
                if self._cancel.wait(self.POLL_SECONDS):
                    raise WalkCancelled("the run stopped")

        # One walk fills three tables and the viral FASTA (a second pass over the input, in
        # lock-step with contigs.tsv): each is written atomically, renamed innermost first.
        self.viral_fasta = viral_fasta_possible(self.setup)
        if self.viral_fasta:
            input_path = self.setup.options.input_path
            if hash_input(input_path) != config.input_sha256:
                raise InputError(f"{input_path}: the input changed during the run; re-run with --force")
            self.input_stat = _stat_key(input_path)

        def fill_viral(predictions: Any, chunks: Any, summary: Any, handle: IO[bytes] | None) -> None:
            if handle is None:
                walk(predictions, chunks, summary, None, iter(()))
                return
            # The input was checked whole and its sha256 verified: no duplicate-ID check again.
            with FastaReader(self.setup.options.input_path, check_ids=False) as reader:
                writer = FastaWriter(cast(BinaryIO, _Attributed(handle, paths.viral_fasta)),
                                     line_width=per_sequence.VIRAL_FASTA_WIDTH)
                walk(predictions, chunks, summary, writer, iter(reader))

        def fill_predictions(predictions_handle: io.TextIOWrapper) -> None:
            predictions = _Attributed(predictions_handle, paths.predictions)

            def fill_chunks(chunks_handle: io.TextIOWrapper) -> None:
                chunks = _Attributed(chunks_handle, paths.chunk_scores)

                def fill_summary(summary_handle: io.TextIOWrapper) -> None:
                    summary = _Attributed(summary_handle, paths.contig_summary)
                    if self.viral_fasta:
                        atomic_write(paths.viral_fasta, lambda handle: fill_viral(predictions, chunks, summary,
                                                                                  handle))
                    else:
                        fill_viral(predictions, chunks, summary, None)

                atomic_write(paths.contig_summary, _text_writer(fill_summary))

            atomic_write(paths.chunk_scores, _text_writer(fill_chunks))

        atomic_write(paths.predictions, _text_writer(fill_predictions))


def _merge_runs_down(paths: RunPaths, runs: list[int]) -> list[int]:
    """Merge sorted runs in groups of :data:`MERGE_FAN_IN` into longer runs (numbered after the
    last) until at most that many are left, so the final merge never holds too many files open."""
    following = max(runs, default=0)
    while len(runs) > MERGE_FAN_IN:
        longer = []
        for first in range(0, len(runs), MERGE_FAN_IN):
            following += 1
            group = runs[first:first + MERGE_FAN_IN]
            write_sorted_chunk_calls(paths.sorted_chunk_calls(following), results.merge_sorted_chunk_calls(
                read_sorted_chunk_calls(paths.sorted_chunk_calls(k)) for k in group))
            for k in group:
                paths.sorted_chunk_calls(k).unlink()
            longer.append(following)
        runs = longer
    return runs


def _chunk_key(call: results.ChunkCall) -> str:
    return call.chunk_id


def viral_fasta_possible(setup: RunSetup) -> bool:
    """False (and no ``viral_contigs.fa``, with a warning) when the input is a stream, read once
    already: only a file can be read a second time for the viral sequences."""
    paths, input_path = setup.paths, setup.options.input_path
    if setup.config.input_sha256 is None or is_stream(input_path):
        paths.viral_fasta.unlink(missing_ok=True)
        logger.warning("no %s: the input was a stream, which cannot be read twice; run on a file to get it",
                       paths.viral_fasta.name)
        return False
    return True


def _stat_key(path: str) -> tuple[int, int, int]:
    info = os.stat(path)
    return info.st_ino, info.st_size, info.st_mtime_ns


def _check_viral_fasta(setup: RunSetup, walk: AssemblyWalk) -> bool:
    """Whether ``viral_contigs.fa`` was written; the input must be the file the run accepted: its
    sha256 was checked before the walk read it again, its inode, size and mtime after.

    Raises:
        InputError: the input changed during the run (the viral FASTA is removed).
    """
    if not walk.viral_fasta:
        return False
    input_path = setup.options.input_path
    if walk.viral and walk.input_stat != _stat_key(input_path):
        setup.paths.viral_fasta.unlink(missing_ok=True)
        raise InputError(f"{input_path}: the input changed during the run; re-run with --force")
    return True


def remove_intermediates(paths: RunPaths, options: PredictOptions) -> None:
    """After success, drop what is large and cheap to remake: the shard FASTA files (the
    translate stage re-creates them in seconds) and the feature files, unless kept.

    Features are kept with ``--keep-features`` and also when an earlier ``--keep-features``
    run asked for them (``work/features/KEPT``): hours of GPU work are removed only on
    request (``--discard-features`` or ``--force``). The small score files stay, so
    re-running a finished command only re-translates.
    """
    shutil.rmtree(paths.shards_dir, ignore_errors=True)
    features = sorted(paths.features_dir.glob("*.safetensors")) if paths.features_dir.is_dir() else []
    kept_before = paths.kept_features_marker.exists()
    if options.keep_features or (kept_before and not options.discard_features):
        if features:
            why = "--keep-features" if options.keep_features else "an earlier --keep-features run"
            hint = "" if options.keep_features else "; --discard-features deletes them"
            logger.info("kept %d feature file(s) in %s (asked for by %s)%s", len(features), paths.features_dir,
                        why, hint)
        return
    if kept_before and features:
        logger.info("--discard-features: removed %d kept feature file(s) from %s", len(features), paths.features_dir)
    shutil.rmtree(paths.features_dir, ignore_errors=True)
