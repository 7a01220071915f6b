"""The run's worker: one process per device holding every model kind, for the whole run.

:class:`~virnucpro.pipeline.workqueue.manager.BatchQueueManager` runs these three
functions in each worker process. :func:`init_run_worker` loads each kind named in
its init arguments once, with that kind's own init (``parallel.py`` for DNABERT-S,
``parallel_esm.py`` for ESM-2), and warms each embedder up on synthetic batches
before the worker reports ready, so no shard pays for a first compile.
:func:`prefetch_run_shard` and :func:`embed_run_shard` dispatch a task on its
payload's ``model`` (a :class:`~virnucpro.pipeline.model_kinds.ModelKind` name) to
that kind's prefetch and process functions, so one queue carries DNABERT-S and ESM-2
tasks alike. What the worker did (load, warm-up, busy seconds per model) travels to
the parent in ``worker_info`` (with its ready message) and in each task's result.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from virnucpro.pipeline.model_kinds import EmbedInitArgs, EmbedPayload, model_kind
from virnucpro.pipeline.workqueue.manager import DeferredResult, Task, resolve_callable

logger = logging.getLogger(__name__)


@dataclass
class RunWorkerState:
    """A worker's loaded kinds (name -> that kind's init state) and what it reports about itself."""

    kinds: dict[str, Any]
    worker_info: dict[str, Any] = field(default_factory=dict)


def run_init_args(per_kind: Mapping[str, EmbedInitArgs]) -> dict[str, Any]:
    """The init arguments of :func:`init_run_worker`: each kind's :class:`EmbedInitArgs`, by name."""
    return {"kinds": {name: args.as_mapping() for name, args in per_kind.items()}}


def warm_up(embedder: Any, batch_tokens: int | None) -> dict[str, Any]:
    """Run the embedder's ``warm_up`` (every batch-shape variant on synthetic batches) when it
    has one; an embedder without it reports no warm-up (0 s, not compiled)."""
    method = getattr(embedder, "warm_up", None)
    if method is None:
        return {"seconds": 0.0, "compiled": False, "compile_seconds": 0.0}
    began = time.monotonic()
    result = dict(method(batch_tokens) or {})
    result.setdefault("seconds", time.monotonic() - began)
    result.setdefault("compiled", False)
    result.setdefault("compile_seconds", 0.0)
    return result


def init_run_worker(device: str, init_args: Mapping[str, Any]) -> RunWorkerState:
    """Load and warm up every kind of ``init_args["kinds"]`` on ``device`` (in the order given)."""
    kinds: dict[str, Any] = {}
    info: dict[str, Any] = {"load_seconds": {}, "warm_up_seconds": {}, "compiled": {}, "compile_seconds": {}}
    for name, values in init_args["kinds"].items():
        kind = model_kind(name)
        args = EmbedInitArgs.from_mapping(values)
        began = time.monotonic()
        state = resolve_callable(kind.worker_init)(device, values)
        loaded = time.monotonic()
        warm = warm_up(getattr(state, "embedder", None), args.batch_tokens)
        info["load_seconds"][name] = round(loaded - began, 3)
        info["warm_up_seconds"][name] = round(float(warm["seconds"]), 3)
        info["compiled"][name] = bool(warm["compiled"])
        info["compile_seconds"][name] = round(float(warm["compile_seconds"]), 3)
        kinds[name] = state
        logger.debug("%s loaded in %.1f s, warmed up in %.1f s", kind.label, loaded - began, warm["seconds"])
    return RunWorkerState(kinds, info)


def _kind_of(state: RunWorkerState, task: Task) -> tuple[str, Any]:
    payload: EmbedPayload = task.payload  # type: ignore[assignment]  # Task.payload is annotated as a dict
    return payload.model, state.kinds[payload.model]


def prefetch_run_shard(state: RunWorkerState, task: Task) -> Any:
    """Read and prepare a shard ahead of its turn, with its kind's prefetch function."""
    name, kind_state = _kind_of(state, task)
    prefetch = model_kind(name).worker_prefetch
    return resolve_callable(prefetch)(kind_state, task) if prefetch else None


def embed_run_shard(state: RunWorkerState, task: Task, progress: Callable[[int], None],
                    prepared: Any = None) -> DeferredResult | dict[str, Any]:
    """Embed one shard with its kind's process function; the result also names the model and the
    seconds the device worked on it (``busy_seconds``: from the call until the embeddings are on
    the host; the write that follows runs beside the next task)."""
    name, kind_state = _kind_of(state, task)
    process = resolve_callable(model_kind(name).worker_process)
    began = time.monotonic()
    result = (process(kind_state, task, progress) if prepared is None
              else process(kind_state, task, progress, prepared))
    busy = round(time.monotonic() - began, 4)

    def tagged(values: dict[str, Any] | None) -> dict[str, Any]:
        return {**(values or {}), "model": name, "busy_seconds": busy}

    if isinstance(result, DeferredResult):
        finish = result.finish
        return DeferredResult(lambda: tagged(finish()))
    return tagged(result)
