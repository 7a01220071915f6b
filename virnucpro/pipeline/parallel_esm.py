"""ESM-2 worker functions for :class:`~virnucpro.pipeline.workqueue.manager.BatchQueueManager`.

``init_esm_worker`` loads ESM-2 once per worker process on the worker's device
(BF16 on Ampere or newer under ``--precision auto``); ``embed_esm_shard``
embeds one shard's protein file (each distinct sequence once) and hands back the write of its feature
file (atomically) and ``.done`` marker; ``prefetch_esm_shard`` prepares a shard ahead of its turn. The model kind that names these functions is ``model_kinds.ESM2``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from virnucpro.pipeline.model_kinds import EmbedInitArgs
from virnucpro.pipeline.parallel import EmbedderState, PreparedShard, embed_shard_deferred, prepare_shard
from virnucpro.pipeline.workqueue.manager import DeferredResult, Task


def init_esm_worker(device: str, init_args: Mapping[str, Any]) -> EmbedderState:
    """Load ESM-2 once for this worker (``init_args``: an :class:`EmbedInitArgs` mapping)."""
    import torch

    from virnucpro.models.esm2 import load_esm2
    from virnucpro.models.precision import resolve_precision

    args = EmbedInitArgs.from_mapping(init_args)
    torch_device = torch.device(device)
    dtype = resolve_precision(args.precision, torch_device)
    return EmbedderState(load_esm2(Path(args.model_path), torch_device, dtype, args.compile), args.batch_tokens)


def prefetch_esm_shard(state: EmbedderState, task: Task) -> PreparedShard:
    """Read and prepare a protein shard ahead of its turn (see :func:`~virnucpro.pipeline.parallel.prepare_shard`)
    and encode its distinct sequences to token ids, off the device's path (the token matrix of each
    batch is then filled while the device computes the batch before)."""
    prepared = prepare_shard(state, task)
    return dataclasses.replace(prepared, encoded=state.embedder.encode(prepared.groups.unique))


def embed_esm_shard(state: EmbedderState, task: Task, progress: Callable[[int], None],
                    prepared: PreparedShard | None = None) -> DeferredResult:
    """Embed one shard's protein frames (see :func:`~virnucpro.pipeline.parallel.embed_shard_deferred`)."""
    return embed_shard_deferred(state, task, progress, prepared)
