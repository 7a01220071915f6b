"""Engine warm-up (every graph built before work), the DNABERT-S bias layout and ESM-2's padded widths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import read_small_fasta as read_fasta
from virnucpro.models.alibi import PAD_BIAS, alibi_slopes, alibi_term, attention_bias, padding_term
from virnucpro.models.dnabert_s import load_dnabert_s
from virnucpro.models.esm2 import has_padding, load_esm2, padded_width
from virnucpro.models.fusion import compile_unavailable_reason

CPU = torch.device("cpu")
WARM_KEYS = {"seconds", "compiled", "compile_seconds", "compile_enabled", "fallback_reason", "variants"}


def _spec4_bias(slopes: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """SPEC 4 as the encoder used to build it: one FP32 [B, H, T, T] sum."""
    pos = torch.arange(mask.shape[1])
    alibi = slopes[:, None, None] * -(pos[None, :] - pos[:, None]).abs().float()
    return alibi[None] + ((1.0 - mask.float()) * PAD_BIAS)[:, None, None, :]


def test_bias_is_one_alibi_term_plus_a_padding_term_in_the_compute_dtype():
    slopes = torch.tensor(alibi_slopes(12))
    mask = torch.arange(24)[None, :] < torch.tensor([24, 19, 7])[:, None]
    full = torch.ones(3, 24, dtype=torch.bool)
    assert alibi_term(slopes, 24, torch.bfloat16).shape == (1, 12, 24, 24)
    assert padding_term(mask, torch.bfloat16).shape == (3, 1, 1, 24)
    unpadded = attention_bias(slopes, full, torch.bfloat16)
    assert unpadded.shape == (1, 12, 24, 24) and unpadded.dtype == torch.bfloat16  # broadcast over the batch
    padded = attention_bias(slopes, mask, torch.bfloat16)
    assert padded.shape == (3, 12, 24, 24) and padded.dtype == torch.bfloat16
    # FP32: bit for bit SPEC 4's sum; BF16: the real keys' values as the FP32 sum rounds them.
    assert torch.equal(attention_bias(slopes, mask), _spec4_bias(slopes, mask))
    assert torch.equal(attention_bias(slopes, full, padded=False)[0], _spec4_bias(slopes, full)[0])
    real = mask[:, None, None, :].expand(3, 12, 24, 24)
    assert torch.equal(padded[real], _spec4_bias(slopes, mask).to(torch.bfloat16)[real])
    assert float(padded[~real].max()) < -9000


def test_esm2_widths_are_multiples_of_eight():
    assert [padded_width(n) for n in (1, 6, 7, 100, 166)] == [8, 8, 16, 104, 168]
    assert np.array_equal(padded_width(np.array([6, 7])), [8, 16])
    assert not has_padding(np.array([166, 166])) and has_padding(np.array([100, 100]))
    assert has_padding(np.array([166, 160]))


def test_esm2_padding_to_eight_leaves_the_embeddings_as_one_at_a_time(tiny_ref: Path):
    """SPEC 9: a batch padded to a multiple of 8 gives each sequence its unpadded result (1e-5)."""
    _ids, proteins = read_fasta(tiny_ref / "expected" / "contigs_identified_protein.faa")
    esm = load_esm2(tiny_ref / "models" / "esm2_t36_tiny.pt", CPU, torch.float32, "off")
    batch = proteins[:8]
    assert any(has_padding(np.array([len(p)])) for p in batch)
    together = esm.embed(batch)
    alone = torch.cat([esm.embed([p], batch_tokens=1) for p in batch])
    assert float((together - alone).abs().max()) < 1e-5


def test_warm_up_without_compiling_reports_eager(tiny_ref: Path):
    esm = load_esm2(tiny_ref / "models" / "esm2_t36_tiny.pt", CPU, torch.float32, "off")
    dnabert = load_dnabert_s(tiny_ref / "models" / "dnabert_tiny", CPU, torch.float32, "off")
    for engine in (esm, dnabert):
        report = engine.warm_up(4096)
        assert set(report) >= WARM_KEYS and report["compiled"] is False and report["compile_enabled"] is False
        assert report["fallback_reason"] is None and len(report["variants"]) >= 6 and report["seconds"] > 0
        assert engine.compiled is False


@pytest.mark.slow  # compiling on 2 shared cores takes about a minute per engine
@pytest.mark.skipif(compile_unavailable_reason(CPU) is not None, reason="no C++ compiler for Inductor")
def test_after_warm_up_a_run_compiles_nothing(tiny_ref: Path):
    """Every graph a run needs is built by warm_up: embedding real frames afterwards builds none."""
    from torch._dynamo.utils import counters

    _ids, proteins = read_fasta(tiny_ref / "expected" / "contigs_identified_protein.faa")
    _ids, frames = read_fasta(tiny_ref / "expected" / "contigs_identified_nucleotide.fa")
    esm = load_esm2(tiny_ref / "models" / "esm2_t36_tiny.pt", CPU, torch.float32, "on")
    dnabert = load_dnabert_s(tiny_ref / "models" / "dnabert_tiny", CPU, torch.float32, "on")
    for engine, seqs in ((esm, proteins), (dnabert, frames)):
        report = engine.warm_up(None)
        assert report["compiled"] and engine.compiled and report["compile_seconds"] > 0, report
        graphs = counters["stats"]["unique_graphs"]
        engine.embed(seqs[:1])
        engine.embed(seqs[:9])
        engine.embed([seqs[0]] * 3)
        assert counters["stats"]["unique_graphs"] == graphs, engine
