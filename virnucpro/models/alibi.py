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


def attention_bias(slopes: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """FP32 additive attention mask ``alibi + pad_bias``, shape [B, H, T, T].

    Args:
        slopes: [H] FP32 ALiBi slopes.
        mask: [B, T] bool, True on real tokens.
    """
    length = mask.shape[1]
    pos = torch.arange(length, device=mask.device)
    distance = (pos[None, :] - pos[:, None]).abs().to(torch.float32)  # [T, T]
    alibi = slopes[:, None, None] * -distance  # [H, T, T]
    pad = (1.0 - mask.to(torch.float32)) * PAD_BIAS  # [B, T], on keys
    return alibi[None, :, :, :] + pad[:, None, None, :]
