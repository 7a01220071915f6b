"""Run a BatchQueueManager on slow toy tasks as a script, so a test can signal or kill it.

Usage: ``python -m tests.helpers.run_manager OUT_DIR N_WORKERS`` (0: in-process mode). Worker pids
are appended to ``OUT_DIR/pids`` as workers become ready, and ``OUT_DIR/started``
appears once a task has made progress. Exits 130 on SIGINT/SIGTERM, like the CLI.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tests.helpers.toy_workers import write_inputs
from virnucpro.errors import EXIT_INTERRUPTED
from virnucpro.pipeline.checkpoint import clean_temporaries
from virnucpro.pipeline.work_queue import BatchQueueManager, Progress, WorkerStarted


def main(out_dir: Path, n_workers: int) -> int:
    clean_temporaries(out_dir)
    tasks = write_inputs(out_dir, {f"t{i}": 200 for i in range(4)}, modes={f"t{i}": "slow" for i in range(4)},
                         delay=0.05)

    def on_event(event: object) -> None:
        if isinstance(event, WorkerStarted):
            with open(out_dir / "pids", "a") as handle:
                handle.write(f"{event.pid}\n")
        elif isinstance(event, Progress):
            (out_dir / "started").touch()

    manager = BatchQueueManager("tests.helpers.toy_workers:square_init", "tests.helpers.toy_workers:square_process",
                                ["cpu"] * max(1, n_workers), on_event=on_event, progress_interval=0.1,
                                in_process=n_workers == 0)
    try:
        manager.run(tasks)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), int(sys.argv[2])))
