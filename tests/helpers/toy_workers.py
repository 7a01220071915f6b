"""Small real worker functions for the work-queue tests (importable by spawned workers).

A task's payload names an input file of integers (one per line) and an output
path; the worker writes their squares with ``atomic_write`` + ``.done``. The
``mode`` key in the payload makes a task misbehave:

- ``crash_once``: SIGKILL the worker the first time (a marker file remembers);
- ``exit_always``: ``os._exit(137)`` every time;
- ``raise``: raise ``ValueError`` every time;
- ``write_error``: raise ``OutputError`` (as a full disk would) every time;
- ``slow``: sleep ``delay`` seconds per number (used to interrupt a run);
- ``hang_once``: the first time, report one frame and then hang forever (a stuck GPU call);
- ``device_error``: raise a sticky CUDA error (``device-side assert triggered``) every time;
- ``unkillable_once``: the first time, fork a child that keeps every file descriptor of the
  worker open for ``hold`` seconds (its pid in ``<marker>.pid``), report one frame and hang.
  The worker's end of its process sentinel is among those descriptors, so after the parent's
  SIGKILL the sentinel does not fire: what the parent sees of a process stuck in the driver
  (SIGKILL sent, no exit ever observed). The worker itself does die.

:func:`sick_devices` is a ``device_check`` for the queue: the devices listed in
``$TOY_SICK_DEVICES`` (comma-separated) are reported unusable.

``init_args['init_limit_dir']`` makes the init fail once that directory already
holds ``init_limit`` records (a restart that cannot load the model).
``init_args['barrier_dir']`` makes each init wait (up to 60 s) until ``barrier_count``
workers have reached it, so every worker is ready before tasks run out.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from virnucpro.errors import OutputError
from virnucpro.pipeline.checkpoint import atomic_write_text, write_done
from virnucpro.pipeline.workqueue.manager import Task

IDENTITY = {"model": "square", "precision": "exact"}


def square_init(device: str, init_args: dict[str, Any]) -> dict[str, Any]:
    """Record each initialisation as a file ``<init_dir>/<pid>`` (to count model loads)."""
    init_dir = init_args.get("init_dir")
    if init_dir:
        Path(init_dir, str(os.getpid())).write_text(device)
    if init_args.get("init_raises"):
        raise RuntimeError("cannot load the model")
    barrier = init_args.get("barrier_dir")
    if barrier:
        Path(barrier, str(os.getpid())).write_text(device)
        deadline = time.monotonic() + 60
        while len(list(Path(barrier).iterdir())) < int(init_args["barrier_count"]) and time.monotonic() < deadline:
            time.sleep(0.05)
    limit_dir = init_args.get("init_limit_dir")
    if limit_dir:
        if len(list(Path(limit_dir).iterdir())) >= int(init_args["init_limit"]):
            raise RuntimeError("cannot load the model after the device error")
        Path(limit_dir, str(os.getpid())).write_text(device)
    return {"device": device, "pid": os.getpid(), "visible": os.environ.get("CUDA_VISIBLE_DEVICES")}


def square_process(state: dict[str, Any], task: Task, progress: Callable[[int], None]) -> dict[str, Any]:
    """Square the numbers of ``payload['input']`` into ``payload['output']``."""
    payload = task.payload
    mode = payload.get("mode")
    if mode == "crash_once":
        marker = Path(payload["marker"])
        if not marker.exists():
            marker.write_text("crashed")
            os.kill(os.getpid(), signal.SIGKILL)
    elif mode == "hang_once":
        marker = Path(payload["marker"])
        if not marker.exists():
            marker.write_text("hung")
            progress(1)
            while True:
                time.sleep(3600)
    elif mode == "unkillable_once":
        marker = Path(payload["marker"])
        if not marker.exists():
            marker.write_text("stuck")
            child = os.fork()
            if child == 0:  # holds the worker's descriptors, the sentinel's write end among them
                time.sleep(float(payload.get("hold", 60)))
                os._exit(0)
            Path(f"{marker}.pid").write_text(str(child))
            progress(1)
            while True:
                time.sleep(3600)
    elif mode == "exit_always":
        os._exit(137)
    elif mode == "device_error":
        raise RuntimeError("CUDA error: device-side assert triggered")
    elif mode == "raise":
        raise ValueError(f"bad number in {task.key}")
    elif mode == "write_error":
        raise OutputError(f"cannot write {payload['output']}: No space left on device")
    numbers = [int(line) for line in Path(payload["input"]).read_text().split()]
    squares = []
    for number in numbers:
        if mode == "slow":
            time.sleep(payload.get("delay", 0.05))
        squares.append(number * number)
        progress(1)
    output = Path(payload["output"])
    atomic_write_text(output, "".join(f"{s}\n" for s in squares))
    write_done(output, IDENTITY, frames=len(squares))
    return {"frames": len(squares), "pid": state["pid"], "device": state["device"], "visible": state["visible"]}


def sick_devices(device: str) -> str | None:
    """A ``device_check``: why ``device`` is unusable when ``$TOY_SICK_DEVICES`` lists it."""
    sick = [d.strip() for d in os.environ.get("TOY_SICK_DEVICES", "").split(",") if d.strip()]
    return f"{device} reported unhealthy (TOY_SICK_DEVICES)" if device in sick else None


def write_inputs(directory: Path, sizes: dict[str, int], modes: dict[str, str] | None = None,
                 delay: float | None = None) -> list[Task]:
    """Make one input file per task key with ``size`` numbers; returns the tasks."""
    directory.mkdir(parents=True, exist_ok=True)
    tasks = []
    for key, size in sizes.items():
        source = directory / f"{key}.in"
        source.write_text("".join(f"{i}\n" for i in range(size)))
        payload: dict[str, Any] = {"input": str(source), "output": str(directory / f"{key}.out")}
        if modes and key in modes:
            payload["mode"] = modes[key]
            payload["marker"] = str(directory / f"{key}.crashed")
        if delay is not None:
            payload["delay"] = delay
        tasks.append(Task(key, size, payload))
    return tasks


INIT = "tests.helpers.toy_workers:square_init"
PROCESS = "tests.helpers.toy_workers:square_process"


def toy_manager(devices: list[str], events: list, init_args: dict | None = None, **kwargs: Any) -> Any:
    """A BatchQueueManager over the square workers, recording its events in ``events``."""
    from virnucpro.pipeline.workqueue.manager import BatchQueueManager

    return BatchQueueManager(INIT, PROCESS, devices, init_args or {}, on_event=events.append, **kwargs)


def assert_squares(task: Task) -> None:
    """The task's output holds the squares 0..size-1 and its marker verifies."""
    from virnucpro.pipeline.checkpoint import verify_done

    out = Path(task.payload["output"])
    assert out.read_text().split() == [str(i * i) for i in range(task.size)]
    assert verify_done(out, IDENTITY)


# --------------------------------------------------------------------------- pipelined workers (prefetch)
#
# ``square_prefetch`` reads a task's numbers ahead of its turn; ``square_pipelined`` squares them and
# returns a DeferredResult whose finish() writes the output. Each phase records ``begin end pid`` (monotonic
# clock, shared by the processes of one machine) in ``<timeline>/<key>.<phase>`` (phases ``prefetch``,
# ``compute``, ``write``) when the payload names a ``timeline`` directory. Payload keys: ``prefetch_delay``,
# ``delay`` (per number), ``write_delay`` (seconds). Modes, besides ``slow``: ``device_error_once``
# (a sticky CUDA error after ``fault_delay`` seconds, the first time), ``write_error`` (finish raises
# OutputError), ``prefetch_raise_once`` (the first preparation raises ValueError).

PIPELINED = "tests.helpers.toy_workers:square_pipelined"
PREFETCH = "tests.helpers.toy_workers:square_prefetch"


def _record(task: Task, phase: str, begin: float) -> None:
    timeline = task.payload.get("timeline")
    if timeline:
        Path(timeline, f"{task.key}.{phase}").write_text(f"{begin} {time.monotonic()} {os.getpid()}\n")


def square_prefetch(state: dict[str, Any], task: Task) -> list[int]:
    """Read the task's numbers (sleeping ``prefetch_delay`` first)."""
    begin = time.monotonic()
    payload = task.payload
    if payload.get("mode") == "prefetch_raise_once":
        marker = Path(payload["marker"])
        if not marker.exists():
            marker.write_text("raised")
            raise ValueError(f"cannot read {payload['input']}")
    time.sleep(payload.get("prefetch_delay", 0.0))
    numbers = [int(line) for line in Path(payload["input"]).read_text().split()]
    _record(task, "prefetch", begin)
    return numbers


def square_pipelined(state: dict[str, Any], task: Task, progress: Callable[[int], None],
                     numbers: list[int]) -> Any:
    """Square the prepared numbers; the output is written by the returned DeferredResult."""
    from virnucpro.pipeline.workqueue.manager import DeferredResult

    begin = time.monotonic()
    payload = task.payload
    mode = payload.get("mode")
    if mode == "device_error_once":
        marker = Path(payload["marker"])
        if not marker.exists():
            marker.write_text("faulted")
            time.sleep(payload.get("fault_delay", 0.0))
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
    squares = []
    for number in numbers:
        if mode in ("slow", "write_error"):
            time.sleep(payload.get("delay", 0.05))
        squares.append(number * number)
        progress(1)
    _record(task, "compute", begin)

    def finish() -> dict[str, Any]:
        write_begin = time.monotonic()
        time.sleep(payload.get("write_delay", 0.0))
        output = Path(payload["output"])
        if mode == "write_error":
            raise OutputError(f"cannot write {output}: No space left on device")
        atomic_write_text(output, "".join(f"{s}\n" for s in squares))
        write_done(output, IDENTITY, frames=len(squares))
        _record(task, "write", write_begin)
        return {"frames": len(squares), "pid": state["pid"], "device": state["device"]}

    return DeferredResult(finish)


def pipelined_manager(devices: list[str], events: list, init_args: dict | None = None, **kwargs: Any) -> Any:
    """A BatchQueueManager over the pipelined square workers, recording its events in ``events``."""
    from virnucpro.pipeline.workqueue.manager import BatchQueueManager

    return BatchQueueManager(INIT, PIPELINED, devices, init_args or {}, on_event=events.append,
                             prefetch_fn=PREFETCH, **kwargs)


def phase(timeline: Path, key: str, name: str) -> tuple[float, float, int]:
    """``(begin, end, pid)`` of one recorded phase of a pipelined task."""
    begin, end, pid = Path(timeline, f"{key}.{name}").read_text().split()
    return float(begin), float(end), int(pid)
