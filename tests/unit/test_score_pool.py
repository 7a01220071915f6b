"""Pool size and threads of the score pool (``--score-workers``), from real device plans."""

from __future__ import annotations

import os
import time

import pytest

from virnucpro.pipeline.run.options import PredictOptions
from virnucpro.pipeline.run.setup import DevicePlan
from virnucpro.pipeline.stages.score_pool import KillablePool, pool_size, score_threads

CORES = len(os.sched_getaffinity(0))


def options(score_workers: int | None = None) -> PredictOptions:
    return PredictOptions("in.fa", "out", score_workers=score_workers)


def test_auto_is_serial_on_cpu_plans_and_the_spare_cores_on_gpu_plans():
    assert pool_size(options(), DevicePlan(["cpu"], True, "fp32")) == 0
    assert pool_size(options(), DevicePlan(["cpu", "cpu"], False, "fp32")) == 0
    one_gpu = DevicePlan(["cuda:0"], True, "bf16")
    assert pool_size(options(), one_gpu) == min(8, max(1, CORES - 2))
    eight = DevicePlan([f"cuda:{i}" for i in range(8)], False, "bf16")
    assert pool_size(options(), eight) == min(8, max(1, CORES - 9))
    assert pool_size(options(), DevicePlan([f"cuda:{i}" for i in range(64)], False, "bf16")) == 1


def test_an_explicit_size_wins_and_threads_share_the_spare_cores():
    assert pool_size(options(3), DevicePlan(["cpu"], True, "fp32")) == 3
    assert pool_size(options(0), DevicePlan(["cuda:0"], True, "bf16")) == 0
    assert score_threads(DevicePlan(["cpu"], True, "fp32"), 2) == 1
    assert score_threads(DevicePlan(["cuda:0"], True, "bf16"), 1) == max(1, CORES - 2)
    assert score_threads(DevicePlan(["cuda:0", "cuda:1"], False, "bf16"), 64) == 1


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_killable_pool_kills_running_jobs_instead_of_waiting():
    """On an exception the pool is killed, not drained: a job 60 s long ends within seconds."""
    pool = KillablePool(2)
    jobs = [pool.submit(time.sleep, 60) for _ in range(3)]
    deadline = time.monotonic() + 60
    while len(pool.pids()) < 2:
        assert time.monotonic() < deadline, "pool processes did not start"
        time.sleep(0.05)
    time.sleep(0.5)  # the first two jobs are running
    pids = pool.pids()
    began = time.monotonic()
    pool.kill()
    pool.shutdown()
    assert time.monotonic() - began < 20
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # gone and reaped, not a zombie we still own
    # none ran to its end: each is cancelled or failed with the broken pool
    assert all(job.done() and (job.cancelled() or job.exception() is not None) for job in jobs)
