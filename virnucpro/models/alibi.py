"""DNABERT-S attention biases (SPEC 4): ALiBi slopes and the additive ALiBi + padding mask.

Kept apart from the encoder so the attention-backend check can build the exact
mask the engine uses without importing the engine.
"""

from __future__ import annotations

import math

import torch

PAD_BIAS = -10000.0  # SPEC 4: (1 - mask) * -10000 on padded keys


def alibi_slopes(num_heads: int) -> list[float]:
    """ALiBi slope of each head (SPEC 4).

    For a power of two n: ``start = 2 ** -(2 ** -(log2(n) - 3))``, slopes
    ``start ** 1 .. start ** n``. Otherwise the slopes for p = 2**floor(log2 n),
    then every other slope of the 2p list, the first n - p of them.
    """

    def power_of_two(n: int) -> list[float]:
        start = 2.0 ** (-(2.0 ** -(math.log2(n) - 3)))
        return [start ** (i + 1) for i in range(n)]

    if num_heads < 1:
        raise ValueError(f"num_heads must be positive, got {num_heads}")
    p = 2 ** math.floor(math.log2(num_heads))
    if p == num_heads:
        return power_of_two(num_heads)
    return power_of_two(p) + power_of_two(2 * p)[0::2][: num_heads - p]


def alibi_term(slopes: torch.Tensor, length: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The ALiBi bias ``-slope * |i - j|`` of every head, ``[1, H, T, T]`` in ``dtype``.

    Computed in FP32 and cast once; it depends only on the length, so the encoder keeps it
    across batches and shares it between all sequences of a batch (it broadcasts over B).

    Args:
        slopes: [H] FP32 ALiBi slopes.
        length: T, the padded length.
    """
    pos = torch.arange(length, device=slopes.device)
    distance = (pos[None, :] - pos[:, None]).abs().to(torch.float32)  # [T, T]
    return (slopes[:, None, None] * -distance)[None].to(dtype)


def padding_term(mask: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """SPEC 4's ``(1 - mask) * -10000`` on padded keys, ``[B, 1, 1, T]`` in ``dtype``.

    Args:
        mask: [B, T] bool, True on real tokens.
    """
    return ((1.0 - mask.to(torch.float32)) * PAD_BIAS).to(dtype)[:, None, None, :]


def attention_bias(slopes: torch.Tensor, mask: torch.Tensor, dtype: torch.dtype = torch.float32,
                   alibi: torch.Tensor | None = None, padded: bool | None = None) -> torch.Tensor:
    """Additive attention mask ``alibi + pad_bias`` in ``dtype``.

    ``[1, H, T, T]`` (the ALiBi term alone, broadcast over the batch) when no key is padded,
    else ``[B, H, T, T]``: the broadcast sum of :func:`alibi_term` and :func:`padding_term`,
    formed once per batch in ``dtype``. In FP32 the values are those of the FP32 sum as SPEC 4
    writes it, bit for bit (``x + 0.0 == x``); in BF16/FP16 each term is rounded once (the real
    keys' ALiBi values exactly as the FP32 sum would round; padded keys about -10000, a zero weight).

    Args:
        slopes: [H] FP32 ALiBi slopes.
        mask: [B, T] bool, True on real tokens.
        dtype: the attention dtype (SDPA needs the mask in the dtype of q).
        alibi: :func:`alibi_term` of this length and dtype, if the caller keeps one.
        padded: whether any key is padded, when the caller knows it on the host (else read from
            ``mask``, which waits for the device).
    """
    if alibi is None:
        alibi = alibi_term(slopes, mask.shape[1], dtype)
    if padded is None:
        padded = not bool(mask.all())
    if not padded:
        return alibi
    return alibi + padding_term(mask, dtype)
