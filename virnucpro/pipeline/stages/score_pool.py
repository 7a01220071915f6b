"""Score shards while the last embedding stage runs: a small pool of processes running ``score_shard``.

:class:`ScorePool` is the score stage of one ``predict`` run. With N > 0 pool
processes (``--score-workers``), ``prediction`` hands it each shard as the last
feature stage (ESM-2) finishes it (:meth:`ScorePool.submit_if_ready`), and the
pool scores it in a ``spawn``-context process while the GPUs embed the next
shards. :meth:`ScorePool.finish` then submits what is left, waits, and scores in
this process every shard whose score file still does not verify
(:func:`~virnucpro.pipeline.stages.score.score_stage`, the safety net). With
N = 0 nothing overlaps: every shard is scored here after the embeddings.

Pool processes ignore SIGINT (the parent decides), die with the parent, and run
torch on :func:`score_threads` threads. A pool process that dies (SIGKILL, the
OOM killer) breaks the pool: a warning, and the safety net scores whatever is
not verified (the score of a shard does not depend on where it ran, so a shard
the pool finished is never scored again and one it lost is scored once here). A
job that raises fails the run with its error. On any exception (SIGINT included)
pending jobs are cancelled and the pool processes killed (results are written
atomically, so a killed job leaves nothing a re-run would trust).

Fault hook for the tests (read in each pool process): ``VIRNUCPRO_FAULT_SCORE_KILL=N``
makes a pool process SIGKILL itself as its N-th job begins.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import wait as wait_for
from concurrent.futures.process import BrokenProcessPool
from types import TracebackType
from typing import Any

from virnucpro.pipeline.checkpoint import read_done, verify_done
from virnucpro.pipeline.outputs import shard_name
from virnucpro.pipeline.report.summary import RunState, StageReport
from virnucpro.pipeline.run.config import RunSetup
from virnucpro.pipeline.run.options import PredictOptions
from virnucpro.pipeline.run.setup import DevicePlan, available_cores
from virnucpro.pipeline.stages.score import (
    ScoreJob,
    count_scored,
    score_identity,
    score_job,
    score_ready,
    score_shard,
    score_stage,
    scoring_classifier,
)
from virnucpro.pipeline.stages.work_files import ShardInfo
from virnucpro.pipeline.workqueue.worker import die_with_parent

logger = logging.getLogger(__name__)

FAULT_SCORE_KILL_ENV = "VIRNUCPRO_FAULT_SCORE_KILL"
MAX_AUTO_WORKERS = 8


def _gpu_workers(plan: DevicePlan) -> int:
    return sum(1 for device in plan.devices if device != "cpu")


def pool_size(options: PredictOptions, plan: DevicePlan) -> int:
    """``--score-workers``, or auto: 0 on an all-CPU plan (its workers already use every core),
    else one process per spare core (cores - GPU workers - this process), 1 to 8."""
    if options.score_workers is not None:
        return options.score_workers
    gpus = _gpu_workers(plan)
    if gpus == 0:
        return 0
    return min(MAX_AUTO_WORKERS, max(1, available_cores() - gpus - 1))


def score_threads(plan: DevicePlan, workers: int) -> int:
    """Torch threads per pool process: a fair share of the cores the GPU workers and this
    process leave; 1 on an all-CPU plan."""
    gpus = _gpu_workers(plan)
    if gpus == 0 or workers <= 0:
        return 1
    return max(1, (available_cores() - gpus - 1) // workers)


# --------------------------------------------------------------------------- inside a pool process

_jobs_begun = 0


def _init_pool_process(parent_pid: int, threads: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(parent_pid)
    import torch

    torch.set_num_threads(threads)


def _warm_up(classifier_path: str, identity: object) -> None:
    """Load what a job needs (torch is loaded by the initializer), while the GPUs embed."""
    from virnucpro.pipeline.stages import feature_files  # noqa: F401 - imported for its import cost

    scoring_classifier(classifier_path, identity)


def _run_job(job: ScoreJob) -> int:
    global _jobs_begun
    _jobs_begun += 1
    kill_at = os.environ.get(FAULT_SCORE_KILL_ENV, "")
    if kill_at.isdigit() and _jobs_begun == int(kill_at):
        os.kill(os.getpid(), signal.SIGKILL)
    return score_shard(job)


def _announce_then_init(pids: Any, initializer: Callable[..., None] | None, initargs: tuple[Any, ...]) -> None:
    pids.put(os.getpid())  # first: a pool process is known (and killable) from its first moment
    if initializer is not None:
        initializer(*initargs)


# --------------------------------------------------------------------------- in the parent


class KillablePool:
    """A ``spawn``-context :class:`ProcessPoolExecutor` whose processes can be killed, with public API
    only: each pool process sends its pid as it starts (before the initializer), and :meth:`kill`
    SIGKILLs those among :func:`multiprocessing.active_children` (so never a stranger's pid).
    A process killed before it sent its pid cannot be missed by much: :meth:`shutdown` then waits
    for it, and with the jobs cancelled it only starts and exits."""

    def __init__(self, workers: int, initializer: Callable[..., None] | None = None,
                 initargs: tuple[Any, ...] = ()) -> None:
        context = multiprocessing.get_context("spawn")
        self._pids = context.SimpleQueue()
        self._known: set[int] = set()
        self.executor = ProcessPoolExecutor(workers, mp_context=context, initializer=_announce_then_init,
                                            initargs=(self._pids, initializer, initargs))

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        return self.executor.submit(fn, *args)

    def pids(self) -> set[int]:
        """The pids of the pool processes started so far."""
        while not self._pids.empty():
            self._known.add(self._pids.get())
        return set(self._known)

    def kill(self, join_timeout: float = 10.0) -> None:
        """SIGKILL every live pool process and reap it (their jobs are lost: results are written atomically)."""
        known = self.pids()
        processes = [p for p in multiprocessing.active_children() if p.pid in known]
        for process in processes:
            process.kill()
        for process in processes:
            process.join(join_timeout)

    def shutdown(self) -> None:
        """Cancel the jobs not started, wait for the running ones (none after :meth:`kill`)."""
        self.executor.shutdown(wait=True, cancel_futures=True)
        self._pids.close()



class ScorePool:
    """The score stage of one run (see the module docstring); use as a context manager.

    Args:
        pending: the shards without a verified score when the run began.
        reused: how many shards were scored by an earlier run (for the report).
        workers: pool processes; 0 = score every shard in this process after the embeddings.
    """

    def __init__(self, setup: RunSetup, state: RunState, pending: list[ShardInfo], reused: int,
                 workers: int) -> None:
        self.setup, self.state, self.reused, self.workers = setup, state, reused, workers
        self._pending = {shard.index: shard for shard in pending}
        self._submitted: set[int] = set()
        self._waiting: set[int] = set()  # finished embedding, waiting for the shards they reuse rows of
        self._running: dict[int, Future[int]] = {}
        self._errors: dict[int, BaseException] = {}
        self._executor: KillablePool | None = None
        self._usable = workers > 0
        self._began: float | None = None

    @property
    def overlaps(self) -> bool:
        """True when shards are scored in pool processes while embedding runs."""
        return self._usable

    def __enter__(self) -> ScorePool:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc is not None:
            self._harvest()  # count what finished, so an interrupted run's summary tells it
        self._close(kill=exc is not None)

    # ------------------------------------------------------------------ submitting

    def start(self) -> None:
        """Start the pool processes now (when there is anything to score), so that they are
        ready when the first shard is: their start-up overlaps the embeddings too."""
        if not self._usable or not self._pending:
            return
        models = self.setup.models
        try:
            for _ in range(self.workers):
                self._submit(_warm_up, str(models.classifier_path), models.identities.get("classifier"))
        except (BrokenProcessPool, OSError, RuntimeError) as exc:
            self._give_up(f"cannot start ({exc})")

    def expect(self, shards: list[ShardInfo]) -> None:
        """Add shards to score (the run learns them as translate goes); starts the pool processes
        with the first one."""
        first = not self._pending and not self._submitted
        for shard in shards:
            if shard.index not in self._submitted:
                self._pending.setdefault(shard.index, shard)
        if first and self._pending:
            self.start()

    def submit_ready(self) -> None:
        """Submit every pending shard that is ready now (resume: features made by an earlier run)."""
        for index in sorted(self._pending):
            self._try_submit(index)

    def submit_if_ready(self, shard_index: int) -> None:
        """Submit shard ``shard_index`` if it is pending, not yet submitted and
        :func:`~virnucpro.pipeline.stages.score.score_ready`; never raises (a shard not
        submitted is scored by the safety net). A shard not ready yet (it reuses rows of a
        shard still being embedded) waits and is tried again each time a shard finishes."""
        if shard_index in self._pending and shard_index not in self._submitted:
            self._waiting.add(shard_index)
        for index in sorted(self._waiting):
            if self._try_submit(index):
                self._waiting.discard(index)

    def _try_submit(self, shard_index: int) -> bool:
        """Submit one waiting shard if it is ready; True once it needs no more tries."""
        shard = self._pending.get(shard_index)
        if not self._usable or shard is None or shard_index in self._submitted:
            return True
        self._harvest()
        if not score_ready(self.setup, shard):
            return False
        try:
            future = self._submit(_run_job, score_job(self.setup, shard))
        except (BrokenProcessPool, OSError, RuntimeError) as exc:
            self._give_up(f"cannot submit {shard_name(shard_index)} ({exc})")
            return True
        self._submitted.add(shard_index)
        self._running[shard_index] = future
        if self._began is None:
            self._began = time.monotonic()
        logger.debug("score: %s submitted to the pool", shard_name(shard_index))
        return True

    def _submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        if self._executor is None:
            threads = score_threads(self.setup.plan, self.workers)
            logger.info("score: %d pool process(es) of %d thread(s) score shards as their features are done",
                        self.workers, threads)
            self._executor = KillablePool(self.workers, _init_pool_process, (os.getpid(), threads))
        # A submit may spawn a pool process: SIGINT is blocked meanwhile, so the child starts with
        # it blocked (the mask is inherited) and a Ctrl-C cannot break its start-up before it
        # ignores SIGINT; this process gets the signal as soon as the mask is restored.
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            return self._executor.submit(fn, *args)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)

    # ------------------------------------------------------------------ results

    def finish(self) -> None:
        """Submit every ready shard left, wait for the pool, then score here every shard whose
        score file does not verify; fill the score stage's report.

        Raises:
            VirnucproError: a job failed (the first by shard order); others as raised by the job.
        """
        self.submit_ready()
        if self._running:
            wait_for(list(self._running.values()))
        self._harvest()
        self._close(kill=False)
        if self._errors:
            raise self._errors[min(self._errors)]
        began = self._began if self._began is not None else time.monotonic()
        report = self._report()
        left = []
        for index in sorted(self._pending):
            shard = self._pending[index]
            if index in self._submitted:  # scored by the pool, result lost with a broken pool?
                marker_frames = self._verified_frames(shard)
                if marker_frames is not None:
                    count_scored(report, marker_frames, began)
                    logger.debug("score: %s scored by the pool (its result was lost with the pool)",
                                 shard_name(index))
                    continue
            left.append(shard)
        if left and self._submitted:
            logger.info("score: %d shard(s) left for this process", len(left))
        report.reused_shards = self.reused
        score_stage(left, self.setup, self.state, self.reused, began)
        report.workers = self.workers

    def _harvest(self) -> None:
        """Count the pool's finished jobs (never blocks); a broken pool is given up."""
        for index, future in list(self._running.items()):
            if not future.done():
                continue
            del self._running[index]
            if future.cancelled():
                continue
            error = future.exception()
            if error is None:
                count_scored(self._report(), future.result(), self._began or time.monotonic())
                self._pending.pop(index, None)
                logger.debug("score: %s scored by the pool", shard_name(index))
            elif isinstance(error, BrokenProcessPool):
                self._give_up("a pool process died (killed? the kernel OOM killer sends SIGKILL)")
            else:
                self._errors[index] = error

    def _verified_frames(self, shard: ShardInfo) -> int | None:
        target = self.setup.paths.shard_scores(shard.index)
        if not verify_done(target, score_identity(self.setup, shard)):
            return None
        return int((read_done(target) or {}).get("frames") or 0)

    def _report(self) -> StageReport:
        report = self.state.stages.setdefault("score", StageReport(reused_shards=self.reused))
        report.workers = self.workers
        return report

    def _give_up(self, why: str) -> None:
        if self._usable:
            logger.warning("score pool: %s; the shards it did not finish are scored in this process", why)
        self._usable = False

    def _close(self, kill: bool) -> None:
        """Stop the pool; ``kill``: cancel pending jobs and kill running ones (never leaves a process)."""
        executor, self._executor = self._executor, None
        if executor is None:
            return
        if kill:
            executor.kill()
        executor.shutdown()
