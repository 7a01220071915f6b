"""The benchmark's cost model against SPEC 8 and against the real modules' weight counts."""

from __future__ import annotations

import pytest
import torch

from virnucpro.benchmark import flops
from virnucpro.benchmark.flops import DNABERT_S, DNABERT_SMALL, ESM2_3B, ESM2_SMALL


def test_esm2_3b_per_token_matches_spec8():
    # SPEC 8: about 5.7 GFLOP per token (24 d^2 per layer * 36, d = 2560, plus attention) at ~168 tokens.
    assert ESM2_3B.matmul_params_per_layer == 12 * 2560**2
    per_token = ESM2_3B.flops_per_token(168)
    assert per_token == 36 * (24 * 2560**2 + 4 * 168 * 2560)
    assert per_token == pytest.approx(5.7e9, rel=0.01)
    # a 500 bp frame (~168 tokens): about 0.97 TFLOP
    assert ESM2_3B.sequence_flops(168) == pytest.approx(0.97e12, rel=0.02)


def test_dnabert_s_per_token_matches_spec8():
    # SPEC 8: about 0.23 GFLOP per token (32 d^2 per layer * 12, d = 768) at ~110 tokens.
    assert DNABERT_S.matmul_params_per_layer == 16 * 768**2
    assert DNABERT_S.flops_per_token(110) == pytest.approx(0.23e9, rel=0.01)


def test_esm2_is_about_97_percent_of_model_work_and_spec8_ceiling():
    esm, dna = ESM2_3B.sequence_flops(168), DNABERT_S.sequence_flops(110)
    assert esm / (esm + dna) == pytest.approx(0.97, abs=0.01)
    frames_per_s = flops.SPEC8_H100_BF16_TFLOPS * 1e12 / (esm + dna)
    assert frames_per_s == pytest.approx(flops.SPEC8_H100_FRAMES_PER_S, rel=0.02)


def test_total_flops_sums_each_sequence_at_its_own_length():
    lengths = [10, 50, 168]
    expected = sum(ESM2_3B.sequence_flops(t) for t in lengths)
    assert ESM2_3B.total_flops(lengths) == pytest.approx(expected, rel=1e-12)
    assert ESM2_3B.total_flops([]) == 0.0


@pytest.mark.parametrize("shape", [ESM2_SMALL, ESM2_3B])
def test_esm2_matmul_params_equal_fair_esm_layer_weights(shape):
    import esm

    with torch.device("meta"):
        model = esm.model.esm2.ESM2(num_layers=shape.layers, embed_dim=shape.dim, attention_heads=shape.heads,
                                    alphabet="ESM-1b")
    counted = sum(p.numel() for n, p in model.named_parameters()
                  if n.startswith("layers.") and n.endswith(".weight") and p.ndim == 2)
    assert counted == shape.matmul_params


def test_dnabert_matmul_params_equal_our_encoder_linear_weights():
    from virnucpro.models.dnabert_s import DnabertConfig, DnabertEncoder

    shape = DNABERT_SMALL
    config = DnabertConfig(shape.dim, shape.layers, shape.heads, shape.ffn, 1e-12, shape.vocab)
    with torch.device("meta"):
        encoder = DnabertEncoder(config)
    counted = sum(m.weight.numel() for m in encoder.modules() if isinstance(m, torch.nn.Linear))
    assert counted == shape.matmul_params


def test_matmul_flops():
    assert flops.matmul_flops(8192) == 2 * 8192**3
