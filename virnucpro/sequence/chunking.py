"""Cut a sequence into overlapping chunks exactly as the published VirNucPro does (SPEC 2).

For a sequence of length ``L`` and chunk length ``C`` there are
``n = ceil(L / C)`` chunks. The total overlap ``R = n*C - L`` is spread over
the chunk starts, but (quirk, kept on purpose) it is divided by ``n`` rather
than ``n - 1``, so the last chunk is usually shorter than ``C``: ``L = 700``,
``C = 500`` gives ``[0:500]`` and ``[349:700]``. A sequence with ``L <= C`` is
one chunk, the whole sequence. Chunk ``k`` (1-based) is named
``f"{record_id}_chunk_{k}"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

S = TypeVar("S", str, bytes)


def chunk_count(length: int, chunk_length: int) -> int:
    """Number of chunks for a sequence of ``length`` bases (0 for an empty sequence)."""
    _check(length, chunk_length)
    return -(-length // chunk_length)


def chunk_starts(length: int, chunk_length: int) -> list[int]:
    """Start offsets of the chunks of a sequence of ``length`` bases.

    Args:
        length: sequence length ``L`` (> 0).
        chunk_length: chunk length ``C`` (> 0).

    Returns:
        ``n = ceil(L / C)`` start offsets; chunk ``k`` is ``seq[start_k : start_k + C]``
        (clipped at ``L``).

    Raises:
        ValueError: ``length`` or ``chunk_length`` is not positive (the
            published tool crashes on an empty sequence; callers skip those).
    """
    _check(length, chunk_length)
    if length <= 0:
        raise ValueError("cannot chunk an empty sequence")
    n = -(-length // chunk_length)
    overlap = n * chunk_length - length
    lo = overlap // n
    hi = lo + 1
    need = overlap - lo * (n - 1)
    # shifts = [hi]*need + [lo]*max(0, n-1-need) + [0]; start_k subtracts shifts[0..k-1],
    # whose sum is hi*k while k <= need and hi*need + lo*(k - need) after.
    return [
        k * chunk_length - (hi * k if k <= need else hi * need + lo * (k - need)) for k in range(n)
    ]


def chunk_bounds(length: int, chunk_length: int) -> list[tuple[int, int]]:
    """``(start, end)`` of each chunk, ``end`` clipped at ``length``.

    Only the last chunk can be clipped, and it always ends at ``length``.
    """
    return [(s, min(s + chunk_length, length)) for s in chunk_starts(length, chunk_length)]


def chunk_sequence(seq: S, chunk_length: int) -> list[S]:
    """Cut ``seq`` into its chunks (same type as ``seq``, case kept)."""
    return [seq[s:e] for s, e in chunk_bounds(len(seq), chunk_length)]


def chunk_ids(record_id: str, count: int) -> Sequence[str]:
    """IDs of the first ``count`` chunks of a record: ``<id>_chunk_1`` ... ``<id>_chunk_<count>``."""
    return [f"{record_id}_chunk_{k}" for k in range(1, count + 1)]


def _check(length: int, chunk_length: int) -> None:
    if chunk_length <= 0:
        raise ValueError(f"chunk_length must be positive, not {chunk_length}")
    if length < 0:
        raise ValueError(f"length must not be negative, not {length}")
