"""Run a BatchQueueManager on slow toy tasks as a script, so a test can signal or kill it.

Usage: ``python -m tests.helpers.run_manager OUT_DIR N_WORKERS [pipelined]`` (0: in-process mode;
``pipelined``: the prefetching toy workers, whose outputs are written in the background). Worker pids
are appended to ``OUT_DIR/pids`` as workers become ready, and ``OUT_DIR/started``
appears once a task has made progress, ``OUT_DIR/began-KEY`` once task KEY has begun. Exits 130 on SIGINT/SIGTERM, like the CLI.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tests.helpers.toy_workers import PIPELINED, PREFETCH, write_inputs
from virnucpro.errors import EXIT_INTERRUPTED
from virnucpro.pipeline.checkpoint import clean_temporaries
from virnucpro.pipeline.workqueue.manager import BatchQueueManager, Progress, Task, TaskStarted, WorkerStarted


def main(out_dir: Path, n_workers: int, pipelined: bool = False) -> int:
    clean_temporaries(out_dir)
    tasks = write_inputs(out_dir, {f"t{i}": 200 for i in range(4)}, modes={f"t{i}": "slow" for i in range(4)},
                         delay=0.05)
    process, extra = "tests.helpers.toy_workers:square_process", {}
    if pipelined:
        tasks = [Task(t.key, t.size, {**t.payload, "delay": 0.01, "write_delay": 1.0}) for t in tasks]
        process, extra = PIPELINED, {"prefetch_fn": PREFETCH}

    def on_event(event: object) -> None:
        if isinstance(event, WorkerStarted):
            with open(out_dir / "pids", "a") as handle:
                handle.write(f"{event.pid}\n")
        elif isinstance(event, Progress):
            (out_dir / "started").touch()
        elif isinstance(event, TaskStarted):
            (out_dir / f"began-{event.task_key}").touch()

    manager = BatchQueueManager("tests.helpers.toy_workers:square_init", process,
                                ["cpu"] * max(1, n_workers), on_event=on_event, progress_interval=0.1,
                                in_process=n_workers == 0, **extra)
    try:
        manager.run(tasks)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3:] == ["pipelined"]))
