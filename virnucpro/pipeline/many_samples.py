"""``virnucpro predict A.fa B.fq.gz ... -o DIR``: many samples in one run, each in ``DIR/<sample>/``.

Each sample is a one-input run of its own (:func:`virnucpro.pipeline.prediction.run_input` on
``DIR/<sample>``, with the same options): it writes exactly the files, and the same bytes,
that ``virnucpro predict <input> -o DIR/<sample>`` writes, and resumes from its own files.
So re-running the same command redoes nothing finished in any sample (a finished sample
only has its shards' scores verified and its tables rewritten), and adding a sample
computes only the new one.

One queue for every sample (:class:`~.stages.embed.SampleQueue`): the main thread runs
one work queue, with one worker per device that loads the models once, for the whole run;
each sample runs on a thread of its own (named ``log.SCOPE_PREFIX + sample``) and puts its
shards' tasks on that queue, earlier samples' tasks first. The next sample is started as
soon as the current one has put all its tasks (its translate is done), and at most
:data:`IN_FLIGHT` samples run at once, so while one sample waits for its last shards, is
scored and assembled, the workers already embed the next one's first shards.

A sample that fails (bad input, its settings differ from its earlier run, a shard failing
for good, ...) is logged, its folder gets ``FAILED.txt`` with the one-line error (and, when
its run had started, a ``run_summary.json`` with status ``failed``), and the others go on;
the run then ends with :data:`~virnucpro.errors.EXIT_SAMPLES_FAILED` (or with the samples'
own exit code when every sample failed alike). A stop signal ends the whole run: the
samples running stop where they are, keeping what they finished.

``DIR`` itself holds ``samples_summary.tsv`` and ``run_summary.json`` (see
:mod:`.report.samples`) and ``virnucpro.log`` (every line of the run); a sample's own
``virnucpro.log`` holds the lines of its thread and of its helper threads (translate, the
table walk) and the queue's lines naming one of its tasks (``<sample>/shard-...``), not the
lines the workers send (model loads: ``DIR/virnucpro.log`` only).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace
from pathlib import Path

from virnucpro.errors import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_SAMPLES_FAILED,
    SamplesFailedError,
    UsageError,
    VirnucproError,
    exit_code_for_signal,
)
from virnucpro.log import SCOPE_PREFIX, add_log_file, remove_log_file
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
from virnucpro.pipeline.stages.embed import SampleQueue, one_queue

logger = logging.getLogger(__name__)

IN_FLIGHT = 2
"""Samples running at once: one finishing (its last shards, scoring, tables) while the next is
translated and embedded. More would only hold more samples' intermediate files at once."""

STOP_WAIT_SECONDS = 30.0
"""After a stop signal, how long the run waits for its samples to stop before it writes the summaries."""


def main_many(options: PredictOptions, samples: list[Sample]) -> int:
    """Run every sample into ``options.output_dir/<sample>`` on one work queue.

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
            with output_dir_lock(root):
                return _ManySamples(options, samples, root).run()
        finally:
            remove_log_file(log_handler)


class _ManySamples:
    """The samples of one run: started in order on their own threads, at most :data:`IN_FLIGHT` at once."""

    def __init__(self, options: PredictOptions, samples: list[Sample], root: Path) -> None:
        self.options, self.samples, self.root = options, samples, root
        self.outcomes = [SampleOutcome(sample.name, sample.path) for sample in samples]
        self.errors: dict[str, VirnucproError] = {}
        self.started = time.monotonic()
        self.finished = threading.Event()  # every sample started has ended, and no more will start
        self._changed = threading.Condition()  # guards the fields below and the summary writes
        self._fed: set[str] = set()  # samples whose tasks are all on the queue, or that ended
        self._running: dict[str, threading.Thread] = {}
        self._stop = False
        self._stopped_by: BaseException | None = None  # a sample's signal stop, or a bug in a sample thread
        self._ended = False  # the run's tables say how it ended (written by _result)

    def run(self) -> int:
        logger.info("%d samples -> %s/<sample>/", len(self.samples), self.root)
        try:
            with one_queue(self._on_fed) as sample_queue:
                sample_queue.ranks.update({sample.name: rank for rank, sample in enumerate(self.samples)})
                driver = threading.Thread(target=self._drive, args=(sample_queue,), name="virnucpro-samples",
                                          daemon=True)
                try:
                    driver.start()
                    sample_queue.serve(self.finished)  # the queue, in this (the main) thread
                    while not self.finished.wait(0.2):
                        pass
                    if self._stopped_by is not None:
                        raise self._stopped_by
                except BaseException as exc:
                    sample_queue.shared.end(None, exc)  # the samples waiting on the queue stop too
                    self._stop_samples()
                    raise
            set_run_context(None)
            return self._result()
        except BaseException as exc:
            # Also a signal that arrives after the last sample ended, while the run's tables are
            # written: they must not keep saying "running". _result's own error has written them.
            interrupted = isinstance(exc, KeyboardInterrupt)
            if self._ended and not interrupted:
                raise
            set_run_context(None)
            with self._changed:
                for outcome in self.outcomes:
                    if outcome.status == "running":
                        outcome.status = "interrupted" if interrupted else "failed"
                self._write("interrupted" if interrupted else "failed",
                            exit_code_for_signal(getattr(exc, "signum", None)) if interrupted
                            else getattr(exc, "exit_code", None))
            raise

    # ------------------------------------------------------------------ the driver thread

    def _drive(self, sample_queue: SampleQueue) -> None:
        """Start each sample once the one before it put all its tasks on the queue and fewer than
        :data:`IN_FLIGHT` run; close the queue once the last one did; end when every one ended."""
        try:
            for index, (sample, outcome) in enumerate(zip(self.samples, self.outcomes, strict=True)):
                with self._changed:
                    while not self._stop and not (
                            index == 0 or (self.samples[index - 1].name in self._fed
                                           and len(self._running) < IN_FLIGHT)):
                        self._changed.wait(1.0)
                    if self._stop:
                        break
                    outcome.status = "running"
                    thread = threading.Thread(target=self._run_sample, args=(sample, outcome),
                                              name=SCOPE_PREFIX + sample.name, daemon=True)
                    self._running[sample.name] = thread
                    self._show_progress()
                logger.info("sample %d/%d %s: %s", index + 1, len(self.samples), sample.name, sample.path)
                signal_at(f"sample:{sample.name}")  # VIRNUCPRO_SIGNAL_AT=sample:NAME[:KILL|:TERM|:INT] (tests)
                thread.start()
            with self._changed:
                while not self._stop and any(o.status == "running" and o.name not in self._fed
                                             for o in self.outcomes):
                    self._changed.wait(1.0)
            sample_queue.close()  # no sample puts tasks any more: the queue ends with the last ones
            with self._changed:
                while self._running and not self._stop:
                    self._changed.wait(1.0)
        except BaseException as exc:  # noqa: BLE001 - a bug here must stop the run, not hang it
            logger.debug("the sample driver failed", exc_info=True)
            with self._changed:
                self._stopped_by = self._stopped_by or exc
                self._stop = True
        finally:
            sample_queue.close()
            self.finished.set()

    def _on_fed(self, name: str) -> None:
        with self._changed:
            self._fed.add(name)
            self._changed.notify_all()

    # ------------------------------------------------------------------ a sample's thread

    def _run_sample(self, sample: Sample, outcome: SampleOutcome) -> None:
        """One sample as a one-input run into ``DIR/<sample>``; its error is recorded, not raised."""
        folder = self.root / sample.name
        failed_note = folder / FAILED_NAME
        began = time.monotonic()
        try:
            failed_note.unlink(missing_ok=True)  # a one-input run's files only; written again if it fails again
            prediction.run_input(replace(self.options, input_path=sample.path, output_dir=str(folder)))
        except VirnucproError as exc:
            outcome.status, outcome.error, outcome.exit_code = "failed", str(exc), exc.exit_code
            self.errors[sample.name] = exc
            logger.error("sample %s failed: %s", sample.name, exc)
            try:
                make_dir(folder)
                atomic_write_text(failed_note, f"{exc}\n")
            except VirnucproError as note_error:
                logger.error("sample %s: %s", sample.name, note_error)
        except BaseException as exc:  # noqa: BLE001 - a stop signal, or a bug: the whole run stops
            outcome.status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
            if not isinstance(exc, KeyboardInterrupt):
                outcome.error, outcome.exit_code = f"{type(exc).__name__}: {exc}", EXIT_FAILURE
                logger.error("sample %s stopped the run: %s", sample.name, outcome.error, exc_info=True)
            with self._changed:
                self._stopped_by = self._stopped_by or exc
                self._stop = True
        else:
            outcome.status, outcome.exit_code = "ok", EXIT_OK
            outcome.counts = read_sample_counts(folder)
        finally:
            outcome.seconds = round(time.monotonic() - began, 3)
            with self._changed:
                self._running.pop(sample.name, None)
                self._fed.add(sample.name)
                self._show_progress()
                if not self._stop:
                    self._write("running", None)
                self._changed.notify_all()
        if outcome.status == "ok":
            signal_at(f"sample-done:{sample.name}")  # VIRNUCPRO_SIGNAL_AT=sample-done:NAME[:KILL|...] (tests)

    # ------------------------------------------------------------------ the main thread's end

    def _stop_samples(self) -> None:
        """No sample starts any more; wait (up to :data:`STOP_WAIT_SECONDS`) for those running to stop."""
        with self._changed:
            self._stop = True
            self._changed.notify_all()
            threads = list(self._running.values())
        deadline = time.monotonic() + STOP_WAIT_SECONDS
        for thread in threads:
            while thread.is_alive() and time.monotonic() < deadline:
                thread.join(0.2)

    def _show_progress(self) -> None:
        """The samples done, failed and running, before the progress lines (lock held)."""
        done, failed = (sum(1 for o in self.outcomes if o.status == s) for s in ("ok", "failed"))
        running = ", ".join(o.name for o in self.outcomes if o.status == "running")
        set_run_context(f"samples {done}/{len(self.outcomes)} done, {failed} failed"
                        + (f", running {running}" if running else ""))

    def _write(self, status: str, exit_code: int | None) -> None:
        write_samples_summary(self.root, self.outcomes, status, exit_code, time.monotonic() - self.started)

    def _result(self) -> int:
        outcomes = self.outcomes
        failed = [o for o in outcomes if o.status == "failed"]
        exit_code = EXIT_OK if not failed else EXIT_SAMPLES_FAILED
        if failed and len(failed) == len(outcomes) and len({o.exit_code for o in failed}) == 1:
            exit_code = failed[0].exit_code or EXIT_SAMPLES_FAILED
        status = "ok" if not failed else "failed" if len(failed) == len(outcomes) else "some_failed"
        with self._changed:
            self._write(status, exit_code)
            self._ended = True
        logger.info("%d of %d samples done, %d failed; per sample: %s", len(outcomes) - len(failed), len(outcomes),
                    len(failed), self.root / SAMPLES_SUMMARY_NAME)
        if not failed:
            return EXIT_OK
        if exit_code != EXIT_SAMPLES_FAILED:
            raise self.errors[failed[-1].name]
        names = ", ".join(o.name for o in failed)
        raise SamplesFailedError(f"{len(failed)} of {len(outcomes)} samples failed ({names}); each folder's "
                                 f"{FAILED_NAME} says why, the others finished ({self.root / SAMPLES_SUMMARY_NAME})")
