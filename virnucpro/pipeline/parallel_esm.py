"""ESM-2 worker functions for :class:`~virnucpro.pipeline.work_queue.BatchQueueManager`.

``init_esm_worker`` loads ESM-2 once per worker process on the worker's device
(BF16 on Ampere or newer under ``--precision auto``); ``embed_esm_shard``
embeds one shard's protein file (each distinct sequence once) and writes its feature file (atomically) and
``.done`` marker. The model kind that names these functions is ``model_kinds.ESM2``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from virnucpro.pipeline.model_kinds import EmbedInitArgs
from virnucpro.pipeline.parallel import EmbedderState, embed_shard
from virnucpro.pipeline.work_queue import Task


def init_esm_worker(device: str, init_args: Mapping[str, Any]) -> EmbedderState:
    """Load ESM-2 once for this worker (``init_args``: an :class:`EmbedInitArgs` mapping)."""
    import torch

    from virnucpro.models.esm2 import load_esm2
    from virnucpro.models.precision import resolve_precision

    args = EmbedInitArgs.from_mapping(init_args)
    torch_device = torch.device(device)
    dtype = resolve_precision(args.precision, torch_device)
    return EmbedderState(load_esm2(Path(args.model_path), torch_device, dtype, args.compile), args.batch_tokens)


def embed_esm_shard(state: EmbedderState, task: Task, progress: Callable[[int], None]) -> dict[str, Any]:
    """Embed one shard's protein frames (see :func:`~virnucpro.pipeline.parallel.embed_shard`)."""
    return embed_shard(state, task, progress)
