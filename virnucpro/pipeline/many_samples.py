"""``virnucpro predict A.fa B.fq.gz ... -o DIR``: many samples in one run, each in ``DIR/<sample>/``.

Each sample is a one-input run of its own (:func:`virnucpro.pipeline.prediction.main` on
``DIR/<sample>``, with the same options): it writes exactly the files, and the same bytes,
that ``virnucpro predict <input> -o DIR/<sample>`` writes, and resumes from its own files.
So re-running the same command redoes nothing finished in any sample (a finished sample
only has its shards' scores verified and its tables rewritten), and adding a sample
computes only the new one.

A sample that fails (bad input, its settings differ from its earlier run, ...) is
logged, its folder gets ``FAILED.txt`` with the one-line error (and, when its run had
started, a ``run_summary.json`` with status ``failed``), and the next sample starts;
the run then ends with :data:`~virnucpro.errors.EXIT_SAMPLES_FAILED` (or with the
samples' own exit code when every sample failed alike). A stop signal ends the whole
run, the current sample keeping what it finished.

One set of workers serves every sample (:func:`~.stages.embed.kept_workers`): the
first sample's embedding queue starts one worker per device and loads the models;
the later samples' queues hand their tasks to the same workers, so the models load
once per device for the whole run. Not shared: one queue across samples (a sample's
shards are embedded once it is translated, after the previous sample was scored
and assembled, so the devices idle during those steps).

``DIR`` itself holds ``samples_summary.tsv`` and ``run_summary.json`` (see
:mod:`.report.samples`) and ``virnucpro.log`` (every sample's log lines).
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path

from virnucpro.errors import EXIT_OK, EXIT_SAMPLES_FAILED, SamplesFailedError, UsageError, VirnucproError
from virnucpro.log import add_log_file, remove_log_file
from virnucpro.pipeline import prediction
from virnucpro.pipeline.checkpoint import atomic_write_text, make_dir, output_dir_lock
from virnucpro.pipeline.outputs import RunPaths
from virnucpro.pipeline.report.samples import (
    FAILED_NAME,
    SAMPLES_SUMMARY_NAME,
    SampleOutcome,
    read_sample_counts,
    set_run_context,
    write_samples_summary,
)
from virnucpro.pipeline.run.checks import check_options
from virnucpro.pipeline.run.options import PredictOptions
from virnucpro.pipeline.run.samples import Sample
from virnucpro.pipeline.run.stop import signal_at, stop_on_signals
from virnucpro.pipeline.stages.embed import kept_workers

logger = logging.getLogger(__name__)


def main_many(options: PredictOptions, samples: list[Sample]) -> int:
    """Run every sample into ``options.output_dir/<sample>``, one after the other.

    Returns:
        0 when every sample finished.

    Raises:
        SamplesFailedError: some samples failed (the others finished).
        VirnucproError: every sample failed with that error's exit code (the last one raised),
            or ``DIR`` cannot be used.
        RunInterrupted: SIGINT/SIGTERM.
    """
    with stop_on_signals():
        check_options(options)
        root = Path(options.output_dir)
        if RunPaths(root).run_json.exists():
            raise UsageError(f"{root} holds a one-input run; write a many-sample run to another directory")
        make_dir(root)
        log_handler = add_log_file(root / "virnucpro.log")
        try:
            with output_dir_lock(root), kept_workers():
                return _run_samples(options, samples, root)
        finally:
            remove_log_file(log_handler)


def _run_samples(options: PredictOptions, samples: list[Sample], root: Path) -> int:
    started = time.monotonic()
    outcomes = [SampleOutcome(sample.name, sample.path) for sample in samples]
    logger.info("%d samples -> %s/<sample>/", len(samples), root)
    last_error: VirnucproError | None = None
    try:
        for number, (sample, outcome) in enumerate(zip(samples, outcomes, strict=True), start=1):
            done, failed_so_far = (sum(1 for o in outcomes if o.status == s) for s in ("ok", "failed"))
            context = f"sample {number}/{len(samples)} {sample.name}, {done} done, {failed_so_far} failed"
            set_run_context(context)
            logger.info("[%s]: %s", context, sample.path)
            signal_at(f"sample:{sample.name}")  # VIRNUCPRO_SIGNAL_AT=sample:NAME[:KILL|:TERM|:INT] (tests)
            error = _run_sample(options, sample, root / sample.name, outcome)
            last_error = error or last_error
            write_samples_summary(root, outcomes, "running", None, time.monotonic() - started)
    except BaseException as exc:
        set_run_context(None)
        current = next((o for o in outcomes if o.status == "pending"), None)
        if current is not None:
            current.status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        write_samples_summary(root, outcomes, "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed",
                              getattr(exc, "exit_code", None), time.monotonic() - started)
        raise
    set_run_context(None)
    failed = [o for o in outcomes if o.status == "failed"]
    exit_code = EXIT_OK if not failed else EXIT_SAMPLES_FAILED
    if failed and len(failed) == len(outcomes) and len({o.exit_code for o in failed}) == 1:
        exit_code = failed[0].exit_code or EXIT_SAMPLES_FAILED
    status = "ok" if not failed else "failed" if len(failed) == len(outcomes) else "some_failed"
    write_samples_summary(root, outcomes, status, exit_code, time.monotonic() - started)
    logger.info("%d of %d samples done, %d failed; per sample: %s", len(outcomes) - len(failed), len(outcomes),
                len(failed), root / SAMPLES_SUMMARY_NAME)
    if not failed:
        return EXIT_OK
    if exit_code != EXIT_SAMPLES_FAILED and last_error is not None:
        raise last_error
    names = ", ".join(o.name for o in failed)
    raise SamplesFailedError(f"{len(failed)} of {len(outcomes)} samples failed ({names}); each folder's "
                             f"{FAILED_NAME} says why, the others finished ({root / SAMPLES_SUMMARY_NAME})")


def _run_sample(options: PredictOptions, sample: Sample, folder: Path, outcome: SampleOutcome) -> VirnucproError | None:
    """One sample as a one-input run into ``folder``; its error is recorded and returned, not raised."""
    failed_note = folder / FAILED_NAME
    failed_note.unlink(missing_ok=True)  # a one-input run's files only; written again if it fails again
    began = time.monotonic()
    try:
        prediction.main(replace(options, input_path=sample.path, output_dir=str(folder)))
    except VirnucproError as exc:
        outcome.status, outcome.error, outcome.exit_code = "failed", str(exc), exc.exit_code
        outcome.seconds = round(time.monotonic() - began, 3)
        logger.error("sample %s failed: %s", sample.name, exc)
        make_dir(folder)
        atomic_write_text(failed_note, f"{exc}\n")
        return exc
    outcome.status, outcome.exit_code = "ok", EXIT_OK
    outcome.seconds = round(time.monotonic() - began, 3)
    outcome.counts = read_sample_counts(folder)
    return None
