"""The spawned worker processes of one run: start, feed, watch, restart and stop them.

:class:`WorkerPool` drives a :class:`~virnucpro.pipeline.workqueue.scheduler.Scheduler`
with one ``spawn``-context process per slot and one duplex pipe per process.
Only the parent hands out work, so it always knows which tasks a worker
holds: the one it runs and, with ``prefetch``, up to ``prefetch`` more sent
ahead (and one it may still be writing). When a worker dies (its sentinel
fires) each task it had begun is re-queued by the scheduler's retry rules,
each it had not begun is re-queued uncharged, and the slot is restarted, up to
``max_worker_restarts`` times. A busy worker silent for ``stall_timeout``
seconds is killed and handled the same way. A worker that exits after a sticky
device error (its task already re-queued, uncharged) is restarted the same way;
if the restart's ``init_fn`` fails the device is retired. A worker still in
``init_fn`` after ``init_timeout`` seconds (a model load that hangs) is killed
and its device retired: a load that hung once hangs again, at the same cost.

Hand-out, each turn: first one task to every ready worker holding none, then
(``prefetch`` > 0) one more to workers with fewer than ``prefetch`` tasks not
begun, as long as more tasks wait than workers are still starting (so a worker
that loads its model faster cannot take a slower one's share). When no task
waits and a worker is idle, a task sent ahead to a busy worker is asked back
(``CancelTask``) for it; after a write error every task sent ahead is asked back.

Each ``cuda:N`` worker gets ``CUDA_VISIBLE_DEVICES`` set to that one GPU
(:func:`~virnucpro.pipeline.workqueue.worker.worker_visible_devices`), so a stray
``cuda:0`` in the worker cannot land on another GPU; logs and events keep ``N``.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import time
from collections.abc import Sequence
from multiprocessing.connection import wait as wait_for_ready
from typing import Any

from virnucpro.pipeline.workqueue.messages import CancelTask, RunTask, StopWorker
from virnucpro.pipeline.workqueue.scheduler import Scheduler, Slot
from virnucpro.pipeline.workqueue.signals import StopSignals
from virnucpro.pipeline.workqueue.tasks import QUEUE_LOGGER, RunInterrupted, Task, WorkerDied, WorkerRestarted
from virnucpro.pipeline.workqueue.worker import (
    EXIT_DEVICE_FAULT,
    resolve_callable,
    worker_main,
    worker_visible_devices,
)

logger = logging.getLogger(QUEUE_LOGGER)


def describe_exit(exitcode: int | None) -> str:
    """How a worker process ended, in words (``"killed by SIGKILL (out of memory? ...)"``)."""
    if exitcode is None:
        return "exit status unknown"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hint = " (out of memory? the kernel OOM killer sends SIGKILL)" if -exitcode == signal.SIGKILL else ""
        return f"killed by {name}{hint}"
    return f"exit code {exitcode}"


class WorkerPool:
    """Runs a scheduler's tasks on spawned workers, one per slot."""

    def __init__(self, scheduler: Scheduler) -> None:
        self._scheduler = scheduler
        self._settings = scheduler.settings
        self._slots = scheduler.slots
        self._ctx = multiprocessing.get_context("spawn")

    def run(self) -> None:
        """Return when every task finished or failed for good; workers are stopped either way.

        Raises:
            RunInterrupted: SIGINT/SIGTERM arrived (workers are asked to stop, then terminated, then killed).
        """
        scheduler = self._scheduler
        with StopSignals(raise_at_once=False) as signals:
            graceful = False
            try:
                while scheduler.pending or any(slot.tasks for slot in self._slots) or scheduler.more_coming:
                    if signals.signum is not None:
                        raise RunInterrupted(signals.signum)
                    scheduler.take_fed()
                    self._start_needed_workers()
                    self._dispatch()
                    live = [slot for slot in self._slots if slot.process is not None]
                    if not live:
                        scheduler.fail_remaining()
                        break
                    self._wait_and_handle(live)
                    self._kill_stalled(live)
                    self._give_up_unkillable(live)
                graceful = True
            finally:
                self._shutdown(graceful)

    # ------------------------------------------------------------------ one turn of the loop

    def _start_needed_workers(self) -> None:
        idle_or_starting = sum(1 for s in self._slots if s.process is not None and not s.tasks)
        needed = self._scheduler.workers_wanted() - idle_or_starting
        for slot in self._slots:
            if needed <= 0:
                break
            if slot.process is not None or slot.retired:
                continue
            if slot.launches and self._device_unusable(slot):
                continue
            if slot.launches:
                slot.restarts += 1
                logger.warning("restarting %s (restart %d of %d)", slot.label, slot.restarts,
                               self._settings.max_worker_restarts)
                self._scheduler.emit(WorkerRestarted(slot.worker_id, slot.device, slot.restarts))
            self._launch(slot)
            needed -= 1

    def _device_unusable(self, slot: Slot) -> bool:
        """Run ``device_check`` before a restart; True (and the slot retired) when it names a reason."""
        spec = self._settings.device_check_spec
        if spec is None:
            return False
        try:
            reason = resolve_callable(spec)(slot.device)
        except Exception as exc:  # noqa: BLE001 - a check that cannot run does not retire a device
            logger.debug("device check of %s failed: %s", slot.device, exc)
            return False
        if not reason:
            return False
        slot.retired = True
        why = f"{slot.label} not restarted: {reason}"
        logger.error("%s; device given up", why)
        self._scheduler.report.worker_errors[slot.label] = why
        self._scheduler.emit(WorkerDied(slot.worker_id, slot.device, None, None, why, False))
        return True

    def _launch(self, slot: Slot) -> None:
        settings = self._settings
        parent_conn, child_conn = self._ctx.Pipe(duplex=True)
        threads = settings.cpu_threads if slot.device == "cpu" else settings.device_threads
        env = dict(settings.worker_env)
        visible = worker_visible_devices(
            slot.device, env.get("CUDA_VISIBLE_DEVICES", os.environ.get("CUDA_VISIBLE_DEVICES")))
        if visible is not None:
            env["CUDA_VISIBLE_DEVICES"] = visible
        process = self._ctx.Process(
            target=worker_main,
            name=f"virnucpro-worker-{slot.worker_id}",
            args=(slot.worker_id, slot.device, settings.init_spec, settings.process_spec, settings.init_args,
                  child_conn, os.getpid(), threads, env, settings.progress_interval, max(0, settings.prefetch),
                  settings.prefetch_spec),
            daemon=True,
        )
        process.start()
        child_conn.close()  # so that the parent sees EOF when the worker dies
        slot.process, slot.conn, slot.ready = process, parent_conn, False
        slot.clear()
        slot.launched_at = time.monotonic()
        slot.killed_at = None
        slot.launches += 1
        logger.debug("started %s as pid %s", slot.label, process.pid)

    def _dispatch(self) -> None:
        scheduler = self._scheduler
        if scheduler.report.write_error is not None:
            for slot in self._slots:
                for task in slot.unbegun():
                    self._cancel(slot, task)
            return
        ready = [s for s in self._slots if s.process is not None and s.conn is not None and s.ready]
        for slot in ready:
            if not slot.tasks:
                self._send(slot)
        depth = max(0, self._settings.prefetch)
        if depth:
            starting = sum(1 for s in self._slots if s.process is not None and not s.ready and not s.retired)
            for slot in ready:
                while (scheduler.pending > starting and slot.conn is not None and slot.tasks
                       and len(slot.unbegun()) < depth):
                    if not self._send(slot):
                        break
        if not scheduler.pending:
            self._rebalance(ready)

    def _send(self, slot: Slot) -> bool:
        """Hand ``slot`` its next task; False when there is none for it or the pipe broke."""
        scheduler = self._scheduler
        if not scheduler.pending or slot.conn is None:
            return False
        task = scheduler.pop_for(slot)
        if task is None:
            return False
        try:
            slot.conn.send(RunTask(task))
        except (OSError, ValueError):
            scheduler.push(task)  # the worker is dying; its sentinel will tell us
            slot.conn = None
            return False
        scheduler.assign(slot, task)
        return True

    def _rebalance(self, ready: Sequence[Slot]) -> None:
        """Ask a busy worker to give back a task it has not begun, for each idle worker that may take it."""
        idle = [s for s in ready if not s.tasks]
        for slot in idle:
            for other in self._slots:
                if other is slot or other.conn is None:
                    continue
                queued = [t for t in other.unbegun() if t.key not in other.withdrawing
                          and self._scheduler.may_take(slot, t)]
                if queued and other.begun:
                    self._cancel(other, queued[-1])
                    break

    def _cancel(self, slot: Slot, task: Task) -> None:
        if task.key in slot.withdrawing or slot.conn is None:
            return
        try:
            slot.conn.send(CancelTask(task.key))
        except (OSError, ValueError):
            return  # the worker is dying; its tasks come back when its sentinel fires
        slot.withdrawing.add(task.key)
        logger.debug("asking %s to give back %s", slot.label, task.key)

    def _wait_and_handle(self, live: Sequence[Slot]) -> None:
        """Wait up to ``poll_interval`` for messages or exits, then handle them."""
        waitables: list[Any] = [slot.process.sentinel for slot in live]
        waitables += [slot.conn for slot in live if slot.conn is not None]
        if self._scheduler.more_coming:
            waitables.append(self._scheduler.feed)  # a new task is handed out at once
        ready = set(wait_for_ready(waitables, timeout=self._settings.poll_interval))
        for slot in live:
            if slot.conn is not None and slot.conn in ready:
                self._drain(slot)
            if slot.process.sentinel in ready:
                self._on_worker_exit(slot)

    def _drain(self, slot: Slot) -> None:
        """Handle every message waiting on the slot's pipe; on EOF stop listening to it."""
        conn = slot.conn
        while conn is not None and slot.conn is conn:
            try:
                if not conn.poll():
                    return
                message = conn.recv()
            except (EOFError, OSError):
                conn.close()
                slot.conn = None
                return
            slot.last_heard = time.monotonic()
            self._scheduler.handle(slot, message)

    def _on_worker_exit(self, slot: Slot, abandoned: bool = False) -> None:
        """The slot's process is gone (or, ``abandoned``, given up after a SIGKILL it ignored)."""
        self._drain(slot)  # a worker may have reported "done" just before dying
        process = slot.process
        if abandoned:
            exitcode = None
            self._abandon(process)
        else:
            process.join(timeout=1)
            exitcode = process.exitcode
        if slot.conn is not None:
            slot.conn.close()
        slot.process, slot.conn, slot.ready = None, None, False
        begun = [t for t in slot.tasks if t.key in slot.begun]
        if abandoned:  # the device broke, not the tasks: every task goes to the others, uncharged
            for lost in begun:
                self._scheduler.requeue_begun(slot, lost)
            begun = []
        for unbegun in slot.unbegun():
            logger.info("%s: %s was sent ahead and not begun; queued again (attempt not counted)", slot.label,
                        unbegun.key)
            self._scheduler.requeue_unbegun(unbegun)
        slot.clear()
        task = begun[0] if begun else None
        if slot.retired and not abandoned:  # init_fn raised; already reported
            return
        if abandoned:
            reason = (f"{slot.label} did not exit {self._settings.kill_grace:g} s after SIGKILL (stuck in the "
                      f"driver?); given up without waiting, device given up")
            slot.retired = True
        elif slot.init_hung:
            reason = (f"{slot.label} did not finish loading its model in "
                      f"{self._settings.init_timeout:g} s and was killed; device given up")
            slot.init_hung = False
        elif slot.stalled:
            reason = f"{slot.label} made no progress for {self._settings.stall_timeout:g} s and was killed"
            slot.stalled = False
        elif slot.device_fault is not None:
            reason = f"{slot.label} exited after a device error ({slot.device_fault})"
            if exitcode != EXIT_DEVICE_FAULT:
                reason += f", {describe_exit(exitcode)}"
            slot.device_fault = None
        else:
            reason = f"{slot.label} died: {describe_exit(exitcode)}"
        will_restart = slot.restarts < self._settings.max_worker_restarts and "device given up" not in reason
        if not will_restart:
            slot.retired = True
            self._scheduler.report.worker_errors[slot.label] = f"{reason}; gave up after {slot.restarts} restart(s)"
        logger.warning("%s%s", reason, f" while running {', '.join(t.key for t in begun)}" if begun else "")
        self._scheduler.emit(WorkerDied(slot.worker_id, slot.device, exitcode, task.key if task else None, reason,
                                        will_restart))
        for failed in begun:
            self._scheduler.task_failed(slot, failed, reason)

    def _abandon(self, process: Any) -> None:
        """Forget a process that ignored SIGKILL: never joined, here or by multiprocessing at exit
        (its exit handler joins every child it knows, which would hang on this one)."""
        import multiprocessing.process as mp_process

        logger.error("pid %s did not exit after SIGKILL; left behind", process.pid)
        children = getattr(mp_process, "_children", None)
        if isinstance(children, set):
            children.discard(process)

    def _give_up_unkillable(self, slots: Sequence[Slot]) -> None:
        """Retire each slot whose process was sent SIGKILL more than ``kill_grace`` s ago and has
        not exited (its sentinel never fired): a process stuck in the driver may never exit."""
        now = time.monotonic()
        for slot in slots:
            if slot.process is not None and slot.killed_at is not None and now - slot.killed_at > self._settings.kill_grace:
                self._on_worker_exit(slot, abandoned=True)

    def _kill(self, slot: Slot) -> None:
        slot.killed_at = time.monotonic()
        slot.process.kill()

    def _kill_stalled(self, slots: Sequence[Slot]) -> None:
        """SIGKILL a busy worker that sent nothing for ``stall_timeout`` seconds (a hung GPU or
        driver call): its sentinel then fires and the usual retry and restart rules apply.
        Also SIGKILL a worker still loading after ``init_timeout`` seconds (its device is retired)."""
        now = time.monotonic()
        init_timeout = self._settings.init_timeout
        if init_timeout:
            for slot in slots:
                if slot.process is None or slot.ready or slot.retired or slot.init_hung or slot.device_fault:
                    continue
                if now - slot.launched_at > init_timeout:
                    logger.error("%s has not finished loading its model after %.0f s; killing it", slot.label,
                                 now - slot.launched_at)
                    slot.init_hung = True
                    self._kill(slot)
        stall_timeout = self._settings.stall_timeout
        if not stall_timeout:
            return
        for slot in slots:
            if slot.process is None or not slot.begun or slot.stalled:
                continue
            if now - slot.last_heard > stall_timeout:
                logger.error("%s sent nothing for %.0f s while running %s; killing it", slot.label,
                             now - slot.last_heard, ", ".join(sorted(slot.begun)))
                slot.stalled = True
                self._kill(slot)

    # ------------------------------------------------------------------ the end

    def _shutdown(self, graceful: bool) -> None:
        """Stop every worker: ask, wait up to ``stop_timeout``, terminate, then kill."""
        live = [slot for slot in self._slots if slot.process is not None]
        if not live:
            return
        if not graceful:
            logger.warning("stopping %d worker(s)...", len(live))
        for slot in live:
            if slot.conn is not None:
                try:
                    slot.conn.send(StopWorker())
                except (OSError, ValueError):
                    pass
        deadline = time.monotonic() + self._settings.stop_timeout
        for slot in live:
            slot.process.join(timeout=max(0.0, deadline - time.monotonic()))
        for slot in live:
            if slot.process.is_alive():
                slot.process.terminate()
        for slot in live:
            slot.process.join(timeout=2)
            if slot.process.is_alive():
                slot.process.kill()
                slot.process.join(timeout=2)
            if slot.process.is_alive():
                logger.error("%s (pid %s) did not exit after SIGKILL", slot.label, slot.process.pid)
                self._abandon(slot.process)
            else:
                slot.process.close()
            if slot.conn is not None:
                slot.conn.close()
            slot.process, slot.conn = None, None
            slot.clear()
