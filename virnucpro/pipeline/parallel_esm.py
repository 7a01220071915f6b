"""ESM-2 worker functions for :class:`~virnucpro.pipeline.work_queue.BatchQueueManager`.

``init_esm_worker`` loads ESM-2 once per worker process on the worker's device
(BF16 on Ampere or newer under ``--precision auto``); ``embed_esm_shard``
embeds one shard's protein file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from virnucpro.pipeline.features import embed_shard
from virnucpro.pipeline.parallel import EmbedderState, load_embedder_state
from virnucpro.pipeline.work_queue import Task


def init_esm_worker(device: str, init_args: Mapping[str, Any]) -> EmbedderState:
    """Load ESM-2 once for this worker (``init_args``: model_path, precision, batch_tokens)."""
    from virnucpro.models.esm2 import load_esm2

    return load_embedder_state(load_esm2, "model_path", device, init_args)


def embed_esm_shard(state: EmbedderState, task: Task, progress: Callable[[int], None]) -> dict[str, Any]:
    """Embed one shard's protein frames; writes the feature file and its ``.done`` marker."""
    return embed_shard(state.embedder, task.payload, state.batch_tokens, progress)
