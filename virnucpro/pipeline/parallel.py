"""DNABERT-S worker functions for :class:`~virnucpro.pipeline.work_queue.BatchQueueManager`.

``init_dnabert_worker`` runs once per worker process and loads the model on
the worker's device in the run's precision; ``embed_dnabert_shard`` embeds one
shard's nucleotide file and writes its feature file (atomically) and
``.done`` marker. Both run inside the worker, so CUDA is only ever touched there.
The model kind that names these functions is ``model_kinds.DNABERT_S``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from virnucpro.models.batching import embed_unique
from virnucpro.pipeline.features import read_shard_sequences, write_feature_result
from virnucpro.pipeline.model_kinds import EmbedInitArgs, EmbedPayload
from virnucpro.pipeline.work_files import read_reuse
from virnucpro.pipeline.work_queue import Task


@dataclass
class EmbedderState:
    """What a worker keeps between tasks: the loaded model and its batch budget."""

    embedder: Any
    batch_tokens: int | None


def init_dnabert_worker(device: str, init_args: Mapping[str, Any]) -> EmbedderState:
    """Load DNABERT-S once for this worker (``init_args``: an :class:`EmbedInitArgs` mapping)."""
    import torch

    from virnucpro.models.dnabert_s import load_dnabert_s
    from virnucpro.models.precision import resolve_precision

    args = EmbedInitArgs.from_mapping(init_args)
    torch_device = torch.device(device)
    dtype = resolve_precision(args.precision, torch_device)
    return EmbedderState(load_dnabert_s(Path(args.model_path), torch_device, dtype, args.compile),
                         args.batch_tokens)


def embed_shard(state: EmbedderState, task: Task, progress: Callable[[int], None]) -> dict[str, Any]:
    """Embed one shard's frames (``task.payload``: an :class:`EmbedPayload`), each distinct sequence once.

    Frames the reuse plan lists (their sequence occurred earlier in the run) are not
    embedded; the feature file records where their rows are. Identical frames left in
    the shard share one embedding. The result's ``duplicates`` counts the frames of
    this shard that reused another frame's row.
    """
    payload: EmbedPayload = task.payload  # type: ignore[assignment]  # Task.payload is annotated as a dict
    ids, seqs = read_shard_sequences(Path(payload.source))
    borrowed = read_reuse(Path(payload.reuse)) if payload.reuse else []
    skip = {b.row for b in borrowed}
    owned = [row for row in range(len(ids)) if row not in skip]
    embeddings, groups = embed_unique(
        lambda unique: state.embedder.embed(unique, batch_tokens=state.batch_tokens, on_batch=progress),
        [seqs[row] for row in owned],
    )
    duplicates = groups.duplicates + len(borrowed)
    if duplicates:
        progress(duplicates)
    write_feature_result(Path(payload.target), [ids[row] for row in owned], embeddings.numpy(), payload.identity,
                         state.embedder.dim, reused=[(ids[b.row], b) for b in borrowed])
    return {"frames": len(ids), "duplicates": duplicates, "output": payload.target}


def embed_dnabert_shard(state: EmbedderState, task: Task, progress: Callable[[int], None]) -> dict[str, Any]:
    """Embed one shard's nucleotide frames (see :func:`embed_shard`)."""
    return embed_shard(state, task, progress)
