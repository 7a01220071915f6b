"""Model shapes and the forward cost model of SPEC 8 (FLOPs counted from shapes, multiply-add = 2).

Per token of a sequence of ``T`` tokens, one encoder layer of width ``d`` costs

* ``2 * P`` FLOPs in its weight matrices, ``P = 4 d^2 + m * ffn * d``: the Q, K,
  V and output projections (``4 d^2``) plus ``m`` FFN matrices of ``ffn x d``
  (``m = 2`` for ESM-2's fc1/fc2, ``m = 3`` for DNABERT-S's gated MLP: gate, up, out);
* ``4 T d`` FLOPs in attention: ``Q K^T`` and ``softmax(.) V`` are each ``T x d``
  multiply-adds per token summed over heads.

So ``flops_per_token(T) = layers * (2 P + 4 T d)``: ESM-2 3B has ``P = 12 d^2``
(``24 d^2`` FLOPs), about 5.7 GFLOP per token at 168 tokens; DNABERT-S has
``P = 16 d^2`` (``32 d^2``), about 0.23 GFLOP per token at 110 tokens. Only useful
work is counted: real tokens (BOS/EOS or CLS/SEP included), never padding, and
no embedding lookups, LayerNorms, biases or softmax (each well under 1%).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TransformerShape:
    """The dimensions that fix an encoder's cost and the size of its random weights.

    Attributes:
        name: ``esm2`` or ``dnabert_s``.
        layers: encoder layers.
        dim: model width ``d``.
        heads: attention heads.
        ffn: FFN inner width.
        ffn_matrices: weight matrices of size ``ffn x d`` per layer (2 plain, 3 gated).
        vocab: token vocabulary size (rows of the embedding table).
    """

    name: str
    layers: int
    dim: int
    heads: int
    ffn: int
    ffn_matrices: int
    vocab: int

    @property
    def matmul_params_per_layer(self) -> int:
        """Weights one token is multiplied with in one layer (``P`` above)."""
        return 4 * self.dim * self.dim + self.ffn_matrices * self.ffn * self.dim

    @property
    def matmul_params(self) -> int:
        """Weights of all layers' matrix products (embedding table excluded)."""
        return self.layers * self.matmul_params_per_layer

    def flops_per_token(self, tokens: float) -> float:
        """Forward FLOPs per token of a sequence of ``tokens`` tokens."""
        return float(self.layers * (2 * self.matmul_params_per_layer + 4 * tokens * self.dim))

    def sequence_flops(self, tokens: int) -> float:
        """Forward FLOPs of one sequence of ``tokens`` tokens."""
        return tokens * self.flops_per_token(tokens)

    def total_flops(self, token_counts: Iterable[int]) -> float:
        """Forward FLOPs of a set of sequences, each counted at its own (unpadded) length."""
        t = np.asarray(list(token_counts), dtype=np.float64)
        linear = 2.0 * self.matmul_params_per_layer * t.sum()
        attention = 4.0 * self.dim * np.square(t).sum()
        return float(self.layers * (linear + attention))

    def describe(self) -> dict[str, int | str]:
        """The shape as a JSON-friendly dict."""
        return {
            "name": self.name, "layers": self.layers, "dim": self.dim, "heads": self.heads,
            "ffn": self.ffn, "ffn_matrices": self.ffn_matrices, "vocab": self.vocab,
            "matmul_params": self.matmul_params,
        }


# Real sizes (SPEC 4, 5): ESM-2 3B (esm2_t36_3B_UR50D) and DNABERT-S (DNABERT-2-117M layout).
ESM2_3B = TransformerShape("esm2", layers=36, dim=2560, heads=40, ffn=4 * 2560, ffn_matrices=2, vocab=33)
DNABERT_S = TransformerShape("dnabert_s", layers=12, dim=768, heads=12, ffn=3072, ffn_matrices=3, vocab=4096)

# Small sizes for machines without a GPU: the same code paths (head_dim 64 for ESM-2 as in
# the 3B model, 12 ALiBi heads for DNABERT-S, the same 4096-token BPE vocabulary), few layers.
ESM2_SMALL = TransformerShape("esm2", layers=2, dim=256, heads=4, ffn=4 * 256, ffn_matrices=2, vocab=33)
DNABERT_SMALL = TransformerShape("dnabert_s", layers=2, dim=96, heads=12, ffn=384, ffn_matrices=3, vocab=4096)

SIZES: dict[str, tuple[TransformerShape, TransformerShape]] = {
    "full": (ESM2_3B, DNABERT_S),
    "small": (ESM2_SMALL, DNABERT_SMALL),
}
"""``size -> (ESM-2 shape, DNABERT-S shape)``."""

SPEC8_H100_BF16_TFLOPS = 800.0
"""Dense BF16 matrix-multiply rate of one H100 assumed by SPEC 8."""

SPEC8_H100_FRAMES_PER_S = 810.0
"""SPEC 8 ceiling: frames per second on one H100, both models together (500 bp frames)."""


def matmul_flops(n: int) -> float:
    """FLOPs of one ``n x n`` by ``n x n`` matrix product."""
    return 2.0 * n * n * n
