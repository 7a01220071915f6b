"""``virnucpro predict``: the stages in order, each resumable from files on disk.

::

    input.fa --translate--> work/shards/k.dna.fa + k.protein.faa   (same IDs, same order)
      k.dna.fa      --worker (DNABERT-S)--> work/features/k.dnabert.safetensors + .done
      k.protein.faa --worker (ESM-2)------> work/features/k.esm.safetensors     + .done
                    (one worker per device, both models loaded and warm, one queue)
      both          --join by ID, classify--> work/scores/k.tsv               + .done
      scores 1..n   --concatenate in order--> prediction_results.txt, ..._highestscore.csv,
                                              contig_summary.tsv, run_summary.json

A result is reused only when its ``.done`` marker verifies (size, sha256 and
the identity of the models, precision and inputs that made it, all taken from
one :class:`~virnucpro.pipeline.run.config.RunConfig`), so re-running the same
command after a crash continues where it stopped.

Before anything is touched the options and the whole input are checked
(:mod:`.run.checks`), then devices and models; only then may ``--force``
remove an earlier run. SIGINT/SIGTERM stop the run wherever it is, and at the
latest at the next stage boundary (:mod:`.run.stop`).

Where things live: the run's decisions in :mod:`.run`; the stage bodies in
:mod:`.stages` (:mod:`.stages.translate`, :mod:`.stages.embed` with every
:mod:`.model_kinds` entry on one queue, :mod:`.stages.score`, :mod:`.stages.assemble`);
the worker holding both models in :mod:`.workers`;
the tables, summary and live view in :mod:`.report`; the generic work queue
the embedders run on in :mod:`.workqueue`.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from virnucpro import __version__
from virnucpro.errors import (
    EXIT_FAILURE,
    EXIT_OK,
    InputError,
    OutputError,
    VirnucproError,
    exit_code_for_signal,
)
from virnucpro.io.fasta_open import is_stream
from virnucpro.log import SCOPE_PREFIX, ScopeFilter, add_log_file, remove_log_file
from virnucpro.pipeline.checkpoint import (
    atomic_write_text,
    check_or_write_run_json,
    clean_temporaries,
    hash_input,
    make_dir,
    output_dir_lock,
    read_done,
    read_run_json,
    wipe_run_state,
)
from virnucpro.pipeline.model_kinds import MODEL_KINDS, ModelKind
from virnucpro.pipeline.outputs import RunPaths
from virnucpro.pipeline.report.dashboard import STAGE_COUNT
from virnucpro.pipeline.report.regions import write_run_regions
from virnucpro.pipeline.report.summary import RunState, write_summary
from virnucpro.pipeline.run.checks import check_input, check_options
from virnucpro.pipeline.run.config import WORK_FORMAT, RunConfig, RunSetup
from virnucpro.pipeline.run.options import PredictOptions
from virnucpro.pipeline.run.setup import plan_devices, resolve_models, resolve_shard_size, resolve_tail_plan
from virnucpro.pipeline.run.stop import check_stop, stop_on_signals
from virnucpro.pipeline.stages.assemble import AssemblyWalk, assemble, remove_intermediates
from virnucpro.pipeline.stages.score_pool import ScorePool, pool_size
from virnucpro.pipeline.stages.stream import Translated, translate_and_embed
from virnucpro.pipeline.stages.work_files import ShardInfo

__all__ = ["WORK_FORMAT", "PredictOptions", "check_input", "main", "run_input"]

logger = logging.getLogger(__name__)


def main(options: PredictOptions) -> int:
    """Run a prediction (or resume one) and write the result tables.

    Returns:
        0 on success. Errors are raised as :class:`~virnucpro.errors.VirnucproError`;
        SIGINT/SIGTERM as :class:`~virnucpro.pipeline.workqueue.manager.RunInterrupted`.
    """
    with stop_on_signals():
        return run_input(options)


def run_input(options: PredictOptions) -> int:
    """:func:`main` without taking the stop signals: a many-sample run calls it for each sample on
    a thread of the sample's own (named ``log.SCOPE_PREFIX + sample``), its main thread holding the
    signals and the one embedding queue (:mod:`.many_samples`). The log file then takes only the
    sample's lines (:class:`~virnucpro.log.ScopeFilter`)."""
    # Options and input first: a bad one must not wait for the models, nor touch DIR.
    check_options(options)
    paths = RunPaths(Path(options.output_dir))
    checked_before = _input_translated_before(paths, options.input_path)
    checked = None if checked_before else check_input(options.input_path, options.effective_chunk_length)
    stream = checked is not None and checked.stream
    make_dir(paths.root)
    log_handler = add_log_file(paths.log)
    thread = threading.current_thread().name
    if thread.startswith(SCOPE_PREFIX):
        log_handler.addFilter(ScopeFilter(thread, mention=f"{paths.root.name}/shard-"))
    if checked_before:
        logger.debug("%s: translated by an earlier run in %s; not checked again", options.input_path, paths.root)
    if stream:
        logger.info("%s is a stream: it is read once, so this run cannot be resumed", options.input_path)
    try:
        with output_dir_lock(paths.root):
            return _run(options, paths, None if checked is None else checked.chunks)
    except OutputError as exc:
        raise OutputError(f"{exc}; finished work is kept, re-run the same command once this is fixed") from exc
    finally:
        remove_log_file(log_handler)


def _input_translated_before(paths: RunPaths, input_path: str) -> bool:
    """True when a translate stage in ``paths.root`` already read this very input (same sha256)
    to the end: resuming a run on a large input then skips the second full read of the check."""
    marker = read_done(paths.translate_index)
    if not marker or is_stream(input_path) or not Path(input_path).is_file():
        return False
    recorded = (marker.get("identity") or {}).get("input_sha256")
    return recorded is not None and recorded == hash_input(input_path)


def _run(options: PredictOptions, paths: RunPaths, chunks: int | None) -> int:
    """Set the run up, then run every stage; a run that fails after it was accepted
    still leaves a ``run_summary.json`` (``chunks``: counted by the input check, None if not)."""
    started = time.monotonic()
    setup = _accept_run(options, paths, chunks)
    state = RunState(started=started)
    try:
        _run_stages(setup, state, chunks)
        write_summary(setup, state, time.monotonic() - started)
        _finish(setup, state)
    except BaseException as exc:
        if not isinstance(exc, InputError):
            interrupted = isinstance(exc, KeyboardInterrupt)
            status = "interrupted" if interrupted else "failed"
            exit_code = (exit_code_for_signal(getattr(exc, "signum", None)) if interrupted
                         else getattr(exc, "exit_code", EXIT_FAILURE))
            if interrupted:  # the console's one "interrupted" line is cli/main's; this is the log file's
                logger.debug("run stopped (%s); finished work is kept in %s", exc or "interrupted", paths.root)
            try:
                write_summary(setup, state, time.monotonic() - started, status=status,
                              error=str(exc) or type(exc).__name__, exit_code=exit_code)
            except Exception as summary_error:  # noqa: BLE001 - never mask the real error
                logger.debug("could not write the failure summary: %s", summary_error)
        raise
    return EXIT_OK


def _accept_run(options: PredictOptions, paths: RunPaths, chunks: int | None) -> RunSetup:
    """Plan devices, resolve models and accept the run in ``paths.root`` (``run.json``);
    only here, after every check passed, may ``--force`` remove an earlier run."""
    logger.info("virnucpro %s predict %s -> %s", __version__, options.input_path, paths.root)
    clean_temporaries(paths.root)  # logs what it removed
    plan = plan_devices(options)
    logger.info("devices: %s; precision: %s", ", ".join(plan.devices), plan.precision)
    models = resolve_models(options)
    if models.demo:
        logger.warning("*** %s ***", models.notice)
    recorded = _recorded_params(paths)
    shard_size = resolve_shard_size(options, _recorded_shard_size(recorded), chunks, plan)
    config = RunConfig.build(options, models, plan, hash_input(options.input_path), shard_size,
                             resolve_tail_plan(options, recorded, chunks, plan, shard_size))
    check_stop("before:accept")
    outcome = check_or_write_run_json(
        paths.root, config.run_params(), force=options.force, state_names=paths.state_names(),
        derived_files=paths.derived_names(tuple(kind.name for kind in MODEL_KINDS)),
        describe=RunConfig.describe_differences,
    )
    if options.keep_features:
        make_dir(paths.features_dir)
        atomic_write_text(paths.kept_features_marker, "kept by --keep-features; later runs keep these files\n")
    return RunSetup(options, paths, config, models, plan, outcome)


def _recorded_params(paths: RunPaths) -> dict | None:
    """The params an earlier run in ``paths.root`` recorded in ``run.json`` (None if none)."""
    try:
        params = (read_run_json(paths.root) or {}).get("params")
    except VirnucproError:  # an unreadable run.json is refused with its own message later
        return None
    return params if isinstance(params, dict) else None


def _recorded_shard_size(recorded: dict | None) -> int | None:
    """The shard size of an earlier run's recorded params (None if none)."""
    value = (recorded or {}).get("shard_size")
    return value if isinstance(value, int) and value > 0 else None


def _run_stages(setup: RunSetup, state: RunState, chunks: int | None = None) -> None:
    """translate + DNABERT-S + ESM-2 (one queue, overlapped) -> score -> assemble, each skipping
    verified work; a stop signal caught in one stage ends the run before the next one starts.

    A shard's tasks of both models are queued as soon as translate wrote it, on one worker per
    device holding both models (:mod:`.stages.stream`). With a score pool (``--score-workers``,
    see :mod:`.score_pool`) scoring overlaps the embeddings: each shard is submitted as its last
    feature file is written. The result tables are walked in input order as shards are scored
    (:class:`.stages.assemble.AssemblyWalk`, started as soon as translate has finished), so after
    the last shard only its rows, the highest-score merge and the viral FASTA are left. Each
    stage's start and end are recorded (``stages.<name>.start_s``/``end_s`` of
    ``run_summary.json``; the embedding workers under ``workers``)."""
    found = Translated()
    walk = _WalkStarter(AssemblyWalk(setup, state), state)
    try:
        with ScorePool(setup, state, [], 0, pool_size(setup.options, setup.plan)) as scoring:

            def on_shard_done(_kind: ModelKind, shard: ShardInfo) -> None:
                if scoring.overlaps and shard.index not in found.scored_before:
                    scoring.expect([shard])
                    scoring.submit_if_ready(shard.index)

            if scoring.overlaps:
                state.mark("score", "start")
            try:
                translate_and_embed(setup, state, chunks, found, on_shard_done, walk.start)
            except InputError:
                if setup.outcome != "resume":  # nothing of this run is worth keeping; let a fixed input start afresh
                    wipe_run_state(setup.paths.root, setup.paths.state_names())
                raise
            # One boundary, three names: both models end on the same queue (after:translate is
            # sent by translate itself, while the queue embeds).
            for boundary in ("after:embed", *(f"after:{kind.name}" for kind in MODEL_KINDS)):
                check_stop(boundary)
            scoring.reused = len(found.scored_before)
            if found.scored_before:
                logger.info("%d of %d shard(s) already scored and verified; reusing them", len(found.scored_before),
                            len(state.shards))
            if state.shards and len(found.scored_before) == len(state.shards) and setup.outcome == "resume":
                logger.info("every shard's scores reused: no embedding computed; re-writing the tables at "
                            "--min-score %g, --min-length %d", setup.config.min_score, setup.config.min_length)
            if not scoring.overlaps:
                state.mark("score", "start")
            logger.info("[score + assemble %d/%d] scoring the shards left and writing the tables", STAGE_COUNT,
                        STAGE_COUNT)
            scoring.expect([s for s in state.shards if s.index not in found.scored_before])
            scoring.finish()
            state.mark("score", "end")
        check_stop("after:score")
        walk.start()  # a no-op when translate started it
        assemble(setup, state, on_table=lambda: check_stop("during:assemble"), walk=walk.walk)
        state.viral_regions = write_run_regions(setup)
    finally:
        walk.cancel()  # a no-op once the walk ended
    state.mark("assemble", "end")
    check_stop("after:assemble")
    remove_intermediates(setup.paths, setup.options)
    # A worker or score-pool process killed mid-write (and redone) left its temp file; every
    # writer of this run has stopped now, so none of them is still being written.
    clean_temporaries(setup.paths.root)


class _WalkStarter:
    """Starts the table walk once (from translate's thread when it ends, or here), never after
    :meth:`cancel`."""

    def __init__(self, walk: AssemblyWalk, state: RunState) -> None:
        self.walk, self.state = walk, state
        self._lock = threading.Lock()
        self._started = self._cancelled = False

    def start(self) -> None:
        with self._lock:
            if self._started or self._cancelled:
                return
            self._started = True
            self.state.mark("assemble", "start")
            self.walk.start()

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
        self.walk.cancel()


def _finish(setup: RunSetup, state: RunState) -> None:
    """The demo notice file and the closing log line."""
    models = setup.models
    if models.demo:
        atomic_write_text(setup.paths.notice, f"{models.notice}\n")
        logger.warning("*** %s ***", models.notice)
    counts, config = state.counts, setup.config
    short = (f" ({counts.too_short} below --min-length {config.min_length}, not scored)"
             if config.min_length else "")
    logger.info(
        "done: %d sequences%s, %d chunks and %d kept frames scored, %d virus chunk(s) (chunk score >= "
        "--min-score %g); results in %s",
        counts.sequences, short, counts.chunks_scored, counts.frames_scored, counts.virus_chunks or 0,
        config.min_score, setup.paths.root,
    )
    where = setup.paths.viral_fasta if state.viral_fasta else "not written (stream input)"
    logger.info("%d of %d scored sequence(s) called virus at --min-score %g; viral sequences: %s",
                counts.sequences_virus, counts.sequences_scored, setup.config.min_score, where)
