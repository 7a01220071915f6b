"""DNABERT-S worker functions for :class:`~virnucpro.pipeline.work_queue.BatchQueueManager`.

``init_dnabert_worker`` runs once per worker process and loads the model on
the worker's device; ``embed_dnabert_shard`` embeds one shard's nucleotide
file. Both run inside the worker, so CUDA is only ever touched there.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from virnucpro.pipeline.features import embed_shard
from virnucpro.pipeline.work_queue import Task


@dataclass
class EmbedderState:
    """What a worker keeps between tasks: the loaded model and its batch budget."""

    embedder: Any
    batch_tokens: int | None


def load_embedder_state(loader: Callable[..., Any], path_key: str, device: str, init_args: Mapping[str, Any]) -> EmbedderState:
    """Load a model with ``loader(path, device, dtype)`` for one worker (shared by both model kinds)."""
    import torch

    from virnucpro.models.precision import resolve_precision

    torch_device = torch.device(device)
    dtype = resolve_precision(init_args["precision"], torch_device)
    embedder = loader(Path(init_args[path_key]), torch_device, dtype)
    return EmbedderState(embedder, init_args.get("batch_tokens"))


def init_dnabert_worker(device: str, init_args: Mapping[str, Any]) -> EmbedderState:
    """Load DNABERT-S once for this worker (``init_args``: model_dir, precision, batch_tokens)."""
    from virnucpro.models.dnabert_s import load_dnabert_s

    return load_embedder_state(load_dnabert_s, "model_dir", device, init_args)


def embed_dnabert_shard(state: EmbedderState, task: Task, progress: Callable[[int], None]) -> dict[str, Any]:
    """Embed one shard's nucleotide frames; writes the feature file and its ``.done`` marker."""
    return embed_shard(state.embedder, task.payload, state.batch_tokens, progress)
