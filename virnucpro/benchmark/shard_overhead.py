"""The per-shard work outside the model, and how much of it the pipelined workers hide.

Around the device work of each shard a worker reads and prepares its inputs
(FASTA, reuse plan, dedupe: :func:`~virnucpro.pipeline.parallel.prepare_shard`)
and afterwards writes its feature file (safetensors, fsync'd atomic write, sha256
``.done``: :func:`~virnucpro.pipeline.parallel.write_shard`). Unpipelined
(``prefetch=0``) the device idles meanwhile; with ``prefetch=1`` the next
shard is prepared and the last one written while a shard computes.

Measured here, for real-size shards (10,000 frames; 768 and 2560 float32
columns, as DNABERT-S and ESM-2 3B write them):

- each step alone, in this process (best of ``repeats``);
- the real work queue with one spawned CPU worker running the real worker
  functions of ``parallel.py`` on ``shards`` shards, with ``prefetch=0`` and
  ``prefetch=1`` in the same run, the model replaced by a stand-in that waits
  ``compute_seconds`` per shard without holding the GIL (as a worker waiting on its
  GPU does) and returns random rows. The time outside the model per shard is
  (first task begun -> last task finished) / shards - ``compute_seconds``, and
  ``hidden`` = 1 - pipelined / unpipelined. The first shard's read and the last
  one's write cannot overlap anything, so ``hidden`` is at most about
  ``(shards - 1) / shards``.

Not measured here: the device-to-host copy (on a GPU it is part of the device
work), and the Python tokenising that competes with the prefetch thread for the
GIL on a GPU worker; on a GPU the figures are "not measured" until run there.

Run: ``python -m virnucpro.benchmark.shard_overhead [--json FILE] [--frames N] [--shards N]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from virnucpro.pipeline.model_kinds import EmbedPayload
from virnucpro.pipeline.parallel import EmbedderState, compute_shard, prepare_shard, write_shard
from virnucpro.pipeline.workqueue.manager import BatchQueueManager, Event, Task, TaskFinished, TaskStarted

logger = logging.getLogger(__name__)

DIMS = {768: ("dnabert", 500, "ACGT"), 2560: ("esm", 166, "ACDEFGHIKLMNPQRSTVWY")}
"""Feature width -> (kind, frame length, alphabet): 500 bp frames and their ~166-residue proteins."""


class StandInEmbedder:
    """Waits ``seconds`` per call (like a worker waiting on its GPU, GIL released) and returns
    random float32 rows of width ``dim``."""

    def __init__(self, dim: int, seconds: float) -> None:
        self.dim = dim
        self.seconds = seconds

    def embed(self, seqs: list[str], batch_tokens: int | None = None,
              on_batch: Callable[[int], None] | None = None) -> torch.Tensor:
        began = time.perf_counter()
        generator = torch.Generator().manual_seed(len(seqs))
        rows = torch.rand((len(seqs), self.dim), generator=generator, dtype=torch.float32)
        time.sleep(max(0.0, self.seconds - (time.perf_counter() - began)))  # the call takes `seconds` in all
        if on_batch is not None:
            on_batch(len(seqs))
        return rows


def init_stand_in(device: str, init_args: Mapping[str, Any]) -> EmbedderState:
    """Worker init for the work-queue measurement (``init_args``: ``dim``, ``seconds``)."""
    return EmbedderState(StandInEmbedder(int(init_args["dim"]), float(init_args["seconds"])), None)


STAND_IN_INIT = "virnucpro.benchmark.shard_overhead:init_stand_in"  # by name: also right under ``python -m``


def write_shard_fasta(path: Path, frames: int, length: int, alphabet: str, seed: int) -> None:
    """``frames`` distinct random sequences of ``length`` letters as FASTA."""
    rng = np.random.default_rng(seed)
    letters = np.frombuffer(alphabet.encode(), dtype=np.uint8)
    rows = letters[rng.integers(0, len(letters), size=(frames, length))]
    with path.open("w") as handle:
        for i, row in enumerate(rows):
            handle.write(f">s{seed}_f{i}\n{row.tobytes().decode()}\n")


def _tasks(directory: Path, kind: str, dim: int, frames: int, shards: int) -> list[Task]:
    _, length, alphabet = DIMS[dim]
    tasks = []
    for shard in range(shards):
        source = directory / f"shard-{shard:05d}.{kind}.fa"
        write_shard_fasta(source, frames, length, alphabet, seed=shard)
        target = directory / f"shard-{shard:05d}.{kind}.safetensors"
        payload = EmbedPayload(str(source), str(target), {"model": f"stand-in-{kind}", "dim": dim})
        tasks.append(Task(f"shard-{shard:05d}:{kind}", frames, payload))  # type: ignore[arg-type]
    return tasks


def _best(repeats: int, step: Callable[[], Any]) -> float:
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        step()
        times.append(time.perf_counter() - began)
    return min(times)


def _queue_seconds(tasks: list[Task], dim: int, compute_seconds: float, prefetch: int) -> float:
    """First task begun -> last task finished, one spawned worker running the real worker functions."""
    marks: list[float] = []

    def on_event(event: Event) -> None:
        if isinstance(event, TaskStarted | TaskFinished):
            marks.append(time.monotonic())

    for task in tasks:
        Path(task.payload.target).unlink(missing_ok=True)  # type: ignore[attr-defined]
    manager = BatchQueueManager(STAND_IN_INIT, "virnucpro.pipeline.parallel:embed_dnabert_shard", ["cpu"],
                                {"dim": dim, "seconds": compute_seconds}, on_event=on_event, prefetch=prefetch,
                                prefetch_fn="virnucpro.pipeline.parallel:prefetch_dnabert_shard", cpu_threads=1)
    manager.run(tasks).raise_for_failures("shard overhead")
    return marks[-1] - marks[0]


def measure_shard_overhead(frames: int = 10_000, dims: tuple[int, ...] = (768, 2560), shards: int = 4,
                           compute_seconds: float = 2.0, repeats: int = 2) -> dict[str, Any]:
    """Time the steps outside the model per shard, and the part of them pipelining hides.

    Returns:
        ``{"frames", "shards", "compute_seconds", "per_dim": [...], "gpu": "not measured", "notes"}``;
        each ``per_dim`` entry has ``prepare_seconds``, ``compute_seconds`` (the stand-in's),
        ``write_seconds`` (serialise + write + fsync + checksum), and for the queue runs
        ``unpipelined_outside_seconds`` / ``pipelined_outside_seconds`` per shard and ``hidden``.
    """
    per_dim = []
    with tempfile.TemporaryDirectory(prefix="virnucpro-shard-overhead-") as tmp:
        for dim in dims:
            kind = DIMS[dim][0]
            directory = Path(tmp, kind)
            directory.mkdir()
            tasks = _tasks(directory, kind, dim, frames, shards)
            state = EmbedderState(StandInEmbedder(dim, 0.0), None)
            prepare = _best(repeats, lambda: prepare_shard(state, tasks[0]))
            prepared = prepare_shard(state, tasks[0])
            computed = compute_shard(state, prepared, lambda n: None)
            payload: EmbedPayload = tasks[0].payload  # type: ignore[assignment]
            write = _best(repeats, lambda: write_shard(payload, computed, dim))
            walls = {depth: _queue_seconds(tasks, dim, compute_seconds, depth) for depth in (0, 1)}
            outside = {depth: max(0.0, wall / shards - compute_seconds) for depth, wall in walls.items()}
            hidden = 1.0 - outside[1] / outside[0] if outside[0] > 0 else None
            entry = {"dim": dim, "kind": kind, "file_mb": round(frames * dim * 4 / 1e6, 1),
                     "prepare_seconds": round(prepare, 4), "write_seconds": round(write, 4),
                     "compute_seconds": compute_seconds,
                     "unpipelined_outside_seconds": round(outside[0], 4),
                     "pipelined_outside_seconds": round(outside[1], 4),
                     "hidden": None if hidden is None else round(hidden, 3),
                     "unpipelined_wall_seconds": round(walls[0], 3), "pipelined_wall_seconds": round(walls[1], 3)}
            logger.info("shard overhead, %d frames x %d: prepare %.3f s, write %.3f s; outside the model per "
                        "shard %.3f s unpipelined, %.3f s pipelined (%s hidden)", frames, dim, prepare, write,
                        outside[0], outside[1], "n/a" if hidden is None else f"{hidden:.0%}")
            per_dim.append(entry)
    return {"frames": frames, "shards": shards, "compute_seconds": compute_seconds, "device": "cpu",
            "per_dim": per_dim, "gpu": "not measured",
            "notes": ["the model is a stand-in that waits compute_seconds per shard (GIL released); "
                      "device-to-host copy and GIL contention with tokenising not included"]}


def main(argv: list[str] | None = None) -> int:
    """Command line: print (or write with ``--json``) :func:`measure_shard_overhead`'s result."""
    parser = argparse.ArgumentParser(prog="python -m virnucpro.benchmark.shard_overhead",
                                     description="Per-shard time outside the model, and how much pipelining hides.")
    parser.add_argument("--json", type=Path, help="write the result here")
    parser.add_argument("--frames", type=int, default=10_000)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--compute-seconds", type=float, default=2.0)
    parser.add_argument("--dims", default="768,2560")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logger.setLevel(logging.INFO)
    dims = tuple(int(d) for d in args.dims.split(","))
    unknown = [d for d in dims if d not in DIMS]
    if unknown or args.frames < 1 or args.shards < 2:
        parser.error(f"--dims takes {sorted(DIMS)}; --frames >= 1, --shards >= 2")
    result = measure_shard_overhead(args.frames, dims, args.shards, args.compute_seconds)
    text = json.dumps(result, indent=2)
    if args.json:
        args.json.write_text(text + "\n")
    else:
        sys.stdout.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
