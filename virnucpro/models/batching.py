"""Length-sorted, token-budgeted batching shared by both embedding engines.

Sequences are sorted longest first; a batch takes as many as fit
``count * longest_padded_length <= budget``. When a batch runs out of GPU
memory, the budget is halved and the same sequences are planned again; the
smaller budget is returned so the engine keeps it for the rest of the run.

Each batch's results are written into a device tensor at the batch's rows in
*sorted* order (a slice, so no index tensor crosses to the device), and the rows
are put back in input order once, on the host, after the single copy at the
end: nothing in the loop waits for the GPU, so while it computes one batch,
Python is already tokenising and copying the next.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

logger = logging.getLogger(__name__)


def plan_batch(padded_lengths: Sequence[int] | np.ndarray, start: int, budget: int) -> int:
    """How many sequences from ``start`` form the next batch.

    ``padded_lengths`` is sorted longest first, so the batch's padded length is
    ``padded_lengths[start]`` and ``count * padded_lengths[start] <= budget``.
    A sequence longer than the whole budget still gets a batch of its own.
    """
    return max(1, min(len(padded_lengths) - start, budget // int(padded_lengths[start])))


def plan_batches(padded_lengths: Sequence[int] | np.ndarray, budget: int) -> list[np.ndarray]:
    """All batches at once: input indices per batch, longest first, each within ``budget``.

    ``padded_lengths`` are in input order (tokens each sequence takes, specials included).
    """
    padded = np.asarray(padded_lengths, dtype=np.int64)
    order = np.argsort(-padded, kind="stable")
    longest_first = padded[order]
    batches, start = [], 0
    while start < len(order):
        count = plan_batch(longest_first, start, budget)
        batches.append(order[start : start + count])
        start += count
    return batches


def shrink_budget(budget: int, failed_batch_tokens: int) -> int:
    """The token budget to use after a batch of ``failed_batch_tokens`` ran out of memory: half of it."""
    return max(1, min(budget, failed_batch_tokens) // 2)


OUT_OF_MEMORY_PATTERNS = ("cublas_status_alloc_failed", "cudnn_status_alloc_failed", "cuda out of memory")
"""Errors that are out of memory though not raised as :class:`torch.OutOfMemoryError` (lower case):
cuBLAS and cuDNN report a failed workspace allocation as a plain ``RuntimeError``."""


def is_out_of_memory(exc: BaseException) -> bool:
    """True for :class:`torch.OutOfMemoryError` and for library allocation failures (cuBLAS, cuDNN)."""
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(pattern in text for pattern in OUT_OF_MEMORY_PATTERNS)


def run_in_budget(
    padded_lengths: Sequence[int],
    budget: int,
    process: Callable[[int, int], None],
    label: str = "model",
) -> int:
    """Call ``process(start, count)`` on consecutive batches that fill ``budget``.

    When ``process`` runs out of memory (:func:`is_out_of_memory`: a
    :class:`torch.OutOfMemoryError` or a cuBLAS/cuDNN allocation failure) on a batch of several
    sequences, the budget is halved and the same sequences are re-planned (outside
    the ``except`` block, so the failed attempt's tensors are freed first); a
    single sequence that does not fit re-raises.

    Returns:
        The budget in force at the end (smaller than ``budget`` after an OOM).
    """
    start = 0
    while start < len(padded_lengths):
        count = plan_batch(padded_lengths, start, budget)
        try:
            process(start, count)
        except RuntimeError as exc:  # torch.OutOfMemoryError is a RuntimeError
            if count == 1 or not is_out_of_memory(exc):
                raise
            failed = count * int(padded_lengths[start])
        else:
            start += count
            continue
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        budget = shrink_budget(budget, failed)
        logger.warning(
            "%s: out of GPU memory on a batch of %d sequences (%d padded tokens); token budget now %d",
            label, count, failed, budget,
        )
    return budget


def embed_sorted(
    lengths: Sequence[int] | np.ndarray,
    dim: int,
    device: torch.device,
    budget: int,
    forward: Callable[[np.ndarray, int], torch.Tensor],
    *,
    padded_length: Callable[[np.ndarray], np.ndarray] = lambda n: n,
    on_batch: Callable[[int], None] | None = None,
    label: str = "model",
) -> tuple[torch.Tensor, int]:
    """The batching loop both encoders use: sort, batch within ``budget``, survive OOM, un-permute.

    Sequences are ordered by ``lengths``, longest first (stable), cut into batches by
    :func:`run_in_budget`, and each batch's ``forward(indices, padded_length)``
    result (``[len(indices), dim]`` on ``device``) is written to the rows of its
    input indices, so the output is in input order whatever the batching.

    Args:
        lengths: token count of each sequence, in input order (the sort key).
        dim: embedding width.
        device: where ``forward`` returns its results.
        budget: padded-token budget per batch.
        forward: embeds the sequences at ``indices`` (input positions), padded to the
            batch's padded length (that of its longest sequence).
        padded_length: vectorised map from token counts to padded batch lengths.
        on_batch: called after each batch with the number of sequences in it.
        label: model name for the out-of-memory warning.

    Returns:
        A float32 CPU tensor ``[len(lengths), dim]`` (made outside inference
        mode, so callers may modify it) and the budget in force at the end.
    """
    # Results gather on the device in sorted order (slice writes: no host-to-device index copy,
    # so no per-batch sync) and are un-permuted once on the host after one device-to-host copy.
    lengths = np.asarray(lengths, dtype=np.int64)
    out = torch.empty((len(lengths), dim), dtype=torch.float32, device=device)
    if not len(lengths):
        return out.cpu().clone(), budget
    order = np.argsort(-lengths, kind="stable")
    longest_first = np.asarray(padded_length(lengths[order]), dtype=np.int64).tolist()

    def process(start: int, count: int) -> None:
        out[start : start + count] = forward(order[start : start + count], longest_first[start])
        if on_batch is not None:
            on_batch(count)

    with torch.inference_mode():
        final_budget = run_in_budget(longest_first, budget, process, label=label)
        sorted_host = out.cpu()
    host = torch.empty_like(sorted_host, device="cpu")
    host[torch.from_numpy(order)] = sorted_host
    return host, final_budget


@dataclass(frozen=True)
class Deduplicated:
    """Distinct sequences of a batch of inputs, and where each input's result comes from.

    ``unique[inverse[i]] == seqs[i]``; ``unique`` keeps first-seen order.
    """

    unique: list[str]
    inverse: np.ndarray

    def expand(self, unique_rows: torch.Tensor) -> torch.Tensor:
        """Every input's row, in input order, from the rows of :attr:`unique` (``unique_rows``)."""
        return unique_rows[torch.from_numpy(self.inverse)] if self.duplicates else unique_rows

    @property
    def duplicates(self) -> int:
        """Inputs that reuse another input's result."""
        return len(self.inverse) - len(self.unique)


def deduplicate(seqs: Sequence[str]) -> Deduplicated:
    """Group identical sequences so each is embedded once (duplicate reads are common)."""
    first: dict[str, int] = {}
    inverse = np.fromiter((first.setdefault(s, len(first)) for s in seqs), dtype=np.int64, count=len(seqs))
    return Deduplicated(list(first), inverse)


def embed_unique(
    embed: Callable[[list[str]], torch.Tensor], seqs: Sequence[str]
) -> tuple[torch.Tensor, Deduplicated]:
    """``embed`` each distinct sequence once and give every input its row (CPU tensor in input order)."""
    groups = deduplicate(seqs)
    return groups.expand(embed(groups.unique)), groups


#: The largest token budget :func:`estimate_batch_tokens` gives (a GPU with room to spare).
MAX_BATCH_TOKENS = 65536


def estimate_batch_tokens(
    free_bytes: int,
    dim: int,
    heads: int,
    dtype_bytes: int,
    *,
    reference_len: int = 512,
    fraction: float = 0.6,
    floor: int = 1024,
    cap: int = MAX_BATCH_TOKENS,
) -> int:
    """Token budget that fits the activations of one layer in ``fraction`` of free memory.

    Per padded token and layer the live tensors are about: the FP32 residual
    stream, its LayerNorm output and the FP32 sub-block result (``4 * 4 * dim``
    bytes), and in the matmul dtype the normed input, QKV, the attention output
    and the two FFN activations (``13 * dim`` elements). Attention adds
    ``heads * T`` FP32 scores per token if SDPA falls back to its unfused
    kernel; ``reference_len`` stands in for T. Inference mode frees each layer's
    temporaries, so the cost does not grow with depth.

    Args:
        free_bytes: device memory free after the weights were placed.
        dim: model width; heads: attention heads; dtype_bytes: bytes per matmul element.

    Returns:
        A budget in padded tokens, clamped to ``[floor, cap]``.
    """
    per_token = dim * (16 + 13 * dtype_bytes) + heads * reference_len * 4
    tokens = int(free_bytes * fraction) // max(1, per_token)
    return int(min(cap, max(floor, tokens)))


def usable_free_bytes(free: int, reserved: int, allocated: int) -> int:
    """Device memory this process can still use: driver-free plus its own cached, unused blocks.

    ``torch.cuda.mem_get_info`` reports memory free *on the device*, which
    excludes what PyTorch's caching allocator already reserved but does not
    use; after the first shard that cache is large, and a budget from
    ``free`` alone would shrink shard after shard. ``reserved - allocated`` is
    that cache (never counted negative).
    """
    return max(0, int(free)) + max(0, int(reserved) - int(allocated))


def cuda_free_bytes(device: torch.device) -> int:
    """:func:`usable_free_bytes` for a CUDA device, from ``mem_get_info`` and the allocator's counters."""
    free, _total = torch.cuda.mem_get_info(device)
    return usable_free_bytes(free, torch.cuda.memory_reserved(device), torch.cuda.memory_allocated(device))
