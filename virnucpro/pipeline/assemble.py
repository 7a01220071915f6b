"""Stage 5 of ``predict``: the three result tables from the shard score files, in input order.

* ``prediction_results.txt``: the score files concatenated under the header;
* ``prediction_results_highestscore.csv``: per-shard chunk calls sorted into
  ``work/assembly/`` and k-way merged (memory: one shard);
* ``contig_summary.tsv``: ``work/contigs.tsv`` walked beside the chunk calls.

Every table is written atomically. After success :func:`remove_intermediates`
drops what is large and cheap to remake.
"""

from __future__ import annotations

import io
import itertools
import logging
import shutil
import time
from collections.abc import Callable, Iterator
from typing import IO

from virnucpro.pipeline import results
from virnucpro.pipeline.checkpoint import atomic_write, make_dir
from virnucpro.pipeline.options import PredictOptions
from virnucpro.pipeline.outputs import RunPaths
from virnucpro.pipeline.summary import RunState, StageReport
from virnucpro.pipeline.work_files import (
    ShardInfo,
    read_contigs,
    read_sorted_chunk_calls,
    write_sorted_chunk_calls,
)

logger = logging.getLogger(__name__)


def _all_rows(paths: RunPaths, shards: list[ShardInfo]) -> Iterator[results.FrameScore]:
    return itertools.chain.from_iterable(results.read_score_file(paths.shard_scores(s.index)) for s in shards)


def assemble(paths: RunPaths, state: RunState, on_table: Callable[[], None] | None = None) -> None:
    """Write the three result tables and record the virus counts in ``state``.

    Args:
        on_table: called after each table is in place (the run's stop check: a stop
            signal ends the assembly there; a re-run writes every table again).
    """
    def table_done() -> None:
        if on_table is not None:
            on_table()

    began = time.monotonic()
    shards = state.shards

    frames_virus = 0

    def write_predictions(handle: IO[bytes]) -> None:
        nonlocal frames_virus
        handle.write(results.PREDICTIONS_HEADER.encode())
        for shard in shards:
            with open(paths.shard_scores(shard.index), "rb") as source:
                for line in source:
                    frames_virus += line.split(b"\t", 2)[1] == b"virus"
                    handle.write(line)

    atomic_write(paths.predictions, write_predictions)
    table_done()

    # Per-chunk calls: sorted per shard into temporary files, then k-way merged.
    make_dir(paths.assembly_dir)
    for shard in shards:
        rows = results.read_score_file(paths.shard_scores(shard.index))
        calls = sorted(results.chunk_calls(rows), key=lambda c: c.chunk_id)
        write_sorted_chunk_calls(paths.sorted_chunk_calls(shard.index), calls)

    chunks_virus = 0

    def write_highest(handle: IO[bytes]) -> None:
        nonlocal chunks_virus
        text = io.TextIOWrapper(handle, encoding="utf-8", newline="")
        text.write(results.HIGHEST_SCORE_HEADER)
        merged = results.merge_sorted_chunk_calls(
            read_sorted_chunk_calls(paths.sorted_chunk_calls(s.index)) for s in shards
        )
        _rows, chunks_virus = results.write_highest_score_rows(merged, text)
        text.flush()
        text.detach()

    atomic_write(paths.highest_score, write_highest)
    shutil.rmtree(paths.assembly_dir, ignore_errors=True)
    table_done()

    def write_contigs(handle: IO[bytes]) -> None:
        handle.write(results.CONTIG_SUMMARY_HEADER.encode())
        calls = results.chunk_calls(_all_rows(paths, shards))
        for line in results.contig_summary_lines(read_contigs(paths.contigs_table), calls):
            handle.write(line.encode("utf-8"))

    atomic_write(paths.contig_summary, write_contigs)
    state.counts.frames_virus = frames_virus
    state.counts.chunks_virus = chunks_virus
    state.stages["assemble"] = StageReport(seconds=time.monotonic() - began, frames=state.counts.kept_frames)


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
