"""DNABERT-S worker functions for :class:`~virnucpro.pipeline.workqueue.manager.BatchQueueManager`.

``init_dnabert_worker`` runs once per worker process and loads the model on
the worker's device in the run's precision; ``embed_dnabert_shard`` embeds one
shard's nucleotide file and hands back the write of its feature file
(atomically) and ``.done`` marker, which the worker runs on its writer thread
while the next shard computes; ``prefetch_dnabert_shard`` reads and prepares a
shard ahead of its turn. The steps are :func:`prepare_shard` (read, reuse plan,
dedupe), :func:`compute_shard` (device, host copy) and :func:`write_shard`;
:func:`embed_shard` runs them in turn. All run inside the worker, so CUDA is
only ever touched there.
The model kind that names these functions is ``model_kinds.DNABERT_S``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from virnucpro.models.batching import Deduplicated, deduplicate
from virnucpro.pipeline.model_kinds import EmbedInitArgs, EmbedPayload
from virnucpro.pipeline.stages.feature_files import read_shard_sequences, write_feature_result
from virnucpro.pipeline.stages.reuse import Borrowed
from virnucpro.pipeline.stages.work_files import read_reuse
from virnucpro.pipeline.workqueue.manager import DeferredResult, Task


@dataclass
class EmbedderState:
    """What a worker keeps between tasks: the loaded model and its batch budget."""

    embedder: Any
    batch_tokens: int | None


class PrefetchedTokens:
    """DNABERT-S's tokenizer with token ids made ahead, on the prefetch thread (GPU_REVIEW finding 6).

    :meth:`prepare` BPE-tokenises a shard's sequences while the device computes the shard before;
    the embedder's ``encode`` then takes each sequence's ids from here (once: they are dropped as
    used) and tokenises only what was not prepared. The ids are the wrapped tokenizer's own, each
    sequence's independent of the others, so the embeddings are the same bit for bit.
    """

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer
        self._ids: dict[str, list[int]] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tokenizer, name)

    def prepare(self, seqs: list[str]) -> None:
        """Tokenise ``seqs`` now (called on the prefetch thread)."""
        missing = [s for s in seqs if s not in self._ids]
        self._ids.update(zip(missing, self._tokenizer.encode(missing)))

    def encode(self, seqs: Any) -> list[list[int]]:
        """Token ids of ``seqs``: prepared ones taken (and forgotten), the rest tokenised here."""
        found = [self._ids.pop(s, None) for s in seqs]
        missing = [s for s, ids in zip(seqs, found) if ids is None]
        made = iter(self._tokenizer.encode(missing) if missing else [])
        return [ids if ids is not None else next(made) for ids in found]


def init_dnabert_worker(device: str, init_args: Mapping[str, Any]) -> EmbedderState:
    """Load DNABERT-S once for this worker (``init_args``: an :class:`EmbedInitArgs` mapping)."""
    import torch

    from virnucpro.models.dnabert_s import load_dnabert_s
    from virnucpro.models.precision import resolve_precision

    args = EmbedInitArgs.from_mapping(init_args)
    torch_device = torch.device(device)
    dtype = resolve_precision(args.precision, torch_device)
    embedder = load_dnabert_s(Path(args.model_path), torch_device, dtype, args.compile)
    embedder.tokenizer = PrefetchedTokens(embedder.tokenizer)  # type: ignore[assignment]  # same interface
    return EmbedderState(embedder, args.batch_tokens)


@dataclass(frozen=True)
class PreparedShard:
    """A shard's inputs, read and deduplicated, ready for the device (:func:`prepare_shard`)."""

    ids: list[str]  # every frame of the shard, file order
    owned_ids: list[str]  # the frames embedded here (not in the reuse plan), file order
    groups: Deduplicated  # their distinct sequences and each owned frame's row among them
    borrowed: list[Borrowed]  # the reuse plan: frames whose row is in an earlier shard


@dataclass(frozen=True)
class ComputedShard:
    """A shard's embeddings on the host (:func:`compute_shard`), ready to be written."""

    prepared: PreparedShard
    embeddings: np.ndarray  # float32 [len(owned_ids), dim]
    duplicates: int  # frames of the shard that reuse another frame's row


def prepare_shard(state: EmbedderState, task: Task) -> PreparedShard:
    """Read one shard's frames and reuse plan (``task.payload``: an :class:`EmbedPayload`) and
    deduplicate the frames to embed; no device work (a worker runs it ahead, on a thread)."""
    payload: EmbedPayload = task.payload  # type: ignore[assignment]  # Task.payload is annotated as a dict
    ids, seqs = read_shard_sequences(Path(payload.source))
    borrowed = read_reuse(Path(payload.reuse)) if payload.reuse else []
    skip = {b.row for b in borrowed}
    owned = [row for row in range(len(ids)) if row not in skip]
    return PreparedShard(ids, [ids[row] for row in owned], deduplicate([seqs[row] for row in owned]), borrowed)


def compute_shard(state: EmbedderState, prepared: PreparedShard, progress: Callable[[int], None]) -> ComputedShard:
    """Embed each distinct owned sequence once and give every owned frame its row, on the host."""
    groups = prepared.groups
    embeddings = groups.expand(state.embedder.embed(groups.unique, batch_tokens=state.batch_tokens,
                                                    on_batch=progress))
    duplicates = groups.duplicates + len(prepared.borrowed)
    if duplicates:
        progress(duplicates)
    return ComputedShard(prepared, embeddings.numpy(), duplicates)


def write_shard(payload: EmbedPayload, computed: ComputedShard, dim: int) -> dict[str, Any]:
    """Write a computed shard's feature file (atomically) and ``.done`` marker; the task's result."""
    prepared = computed.prepared
    write_feature_result(Path(payload.target), prepared.owned_ids, computed.embeddings, payload.identity, dim,
                         reused=[(prepared.ids[b.row], b) for b in prepared.borrowed])
    return {"frames": len(prepared.ids), "duplicates": computed.duplicates, "output": payload.target}


def embed_shard(state: EmbedderState, task: Task, progress: Callable[[int], None],
                prepared: PreparedShard | None = None) -> dict[str, Any]:
    """Embed one shard's frames (``task.payload``: an :class:`EmbedPayload`), each distinct sequence once.

    Frames the reuse plan lists (their sequence occurred earlier in the run) are not
    embedded; the feature file records where their rows are. Identical frames left in
    the shard share one embedding. The result's ``duplicates`` counts the frames of
    this shard that reused another frame's row. The three steps, :func:`prepare_shard`
    (unless ``prepared`` is given), :func:`compute_shard` and :func:`write_shard`, in turn.
    """
    computed = compute_shard(state, prepared if prepared is not None else prepare_shard(state, task), progress)
    return write_shard(task.payload, computed, state.embedder.dim)  # type: ignore[arg-type]


def embed_shard_deferred(state: EmbedderState, task: Task, progress: Callable[[int], None],
                         prepared: PreparedShard | None = None) -> DeferredResult:
    """:func:`embed_shard` for the work queue: returns once the embeddings are on the host; the
    worker writes the feature file (``finish``) while the next shard computes."""
    computed = compute_shard(state, prepared if prepared is not None else prepare_shard(state, task), progress)
    return DeferredResult(functools.partial(write_shard, task.payload, computed,  # type: ignore[arg-type]
                                            state.embedder.dim))


def prefetch_dnabert_shard(state: EmbedderState, task: Task) -> PreparedShard:
    """Read and prepare a nucleotide shard ahead of its turn (see :func:`prepare_shard`) and
    BPE-tokenise its distinct sequences (:class:`PrefetchedTokens`), off the device's path."""
    prepared = prepare_shard(state, task)
    tokenizer = getattr(state.embedder, "tokenizer", None)
    if isinstance(tokenizer, PrefetchedTokens):
        tokenizer.prepare(prepared.groups.unique)
    return prepared


def embed_dnabert_shard(state: EmbedderState, task: Task, progress: Callable[[int], None],
                        prepared: PreparedShard | None = None) -> DeferredResult:
    """Embed one shard's nucleotide frames (see :func:`embed_shard_deferred`)."""
    return embed_shard_deferred(state, task, progress, prepared)
