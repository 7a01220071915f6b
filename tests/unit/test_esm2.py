"""ESM-2 embedder: fidelity to the published tool and to fair-esm, batching, precision, tokens."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import read_small_fasta as read_faa
from tests.unit.esm2_helpers import save_random_esm2
from virnucpro.errors import InputError
from virnucpro.models.batching import estimate_batch_tokens, plan_batches, shrink_budget
from virnucpro.models.esm2 import (
    CPU_BATCH_TOKENS,
    MEAN_WINDOW,
    ROTARY_TOLERANCE,
    encode_sequences,
    esm1b_tokens,
    fill_token_matrix,
    load_esm2,
    rotary_tables,
)
from virnucpro.models.esm2_checkpoint import load_esm2_checkpoint
from virnucpro.models.esm2_reference import build_fair_esm_model, published_embed

CPU = torch.device("cpu")
RESIDUES = "LAGVSERTIDPNQKFYMHWCXBUZO"


@pytest.fixture(scope="module")
def tiny_esm_path(tiny_ref):
    return tiny_ref / "models" / "esm2_t36_tiny.pt"


@pytest.fixture(scope="module")
def proteins(tiny_ref):
    return read_faa(tiny_ref / "expected" / "contigs_identified_protein.faa")


@pytest.fixture(scope="module")
def expected(tiny_ref, proteins):
    data = torch.load(tiny_ref / "expected" / "esm_embeddings.pt", weights_only=True)
    by_id = dict(zip(data["ids"], data["embeddings"]))
    ids, _ = proteins
    return torch.stack([by_id[i] for i in ids])


@pytest.fixture(scope="module")
def embedder_fp32(tiny_esm_path):
    return load_esm2(tiny_esm_path, CPU, torch.float32)


@pytest.fixture(scope="module")
def ours_fp32(embedder_fp32, proteins):
    return embedder_fp32.embed(proteins[1])


@pytest.fixture(scope="module")
def subset(proteins):
    """A spread of lengths from the fixture proteins (keeps the slower checks fast)."""
    _ids, seqs = proteins
    order = np.argsort([len(s) for s in seqs])
    picks = order[np.linspace(0, len(seqs) - 1, 12).astype(int)]
    return [int(i) for i in picks]


# ---------------------------------------------------------------- fidelity


def test_matches_published_fixture(ours_fp32, expected, embedder_fp32):
    assert embedder_fp32.dim == 32 and embedder_fp32.num_layers == 36
    assert ours_fp32.dtype == torch.float32 and ours_fp32.device.type == "cpu"
    diff = (ours_fp32 - expected).abs().max().item()
    assert diff <= 1e-5, diff


def test_matches_fair_esm_forward(tiny_esm_path, proteins, ours_fp32, subset):
    model, alphabet = build_fair_esm_model(load_esm2_checkpoint(tiny_esm_path))
    seqs = [proteins[1][i] for i in subset]
    reference = published_embed(model, alphabet, seqs)
    diff = (ours_fp32[subset] - reference).abs().max().item()
    assert diff <= 1e-5, diff


def test_batch_invariance(embedder_fp32, proteins, ours_fp32, subset):
    seqs = [proteins[1][i] for i in subset]
    one_each = embedder_fp32.embed(seqs, batch_tokens=1)
    large = embedder_fp32.embed(seqs, batch_tokens=1_000_000)
    assert (one_each - ours_fp32[subset]).abs().max().item() <= 1e-6
    assert (large - ours_fp32[subset]).abs().max().item() <= 1e-6


def test_input_order_and_on_batch(embedder_fp32, proteins, ours_fp32, subset):
    seqs = [proteins[1][i] for i in reversed(subset)]
    sizes: list[int] = []
    got = embedder_fp32.embed(seqs, batch_tokens=400, on_batch=sizes.append)
    assert torch.allclose(got, ours_fp32[list(reversed(subset))], atol=1e-6, rtol=0)
    assert sum(sizes) == len(seqs)
    assert sizes == [len(b) for b in plan_batches([len(s) + 2 for s in seqs], 400)]


def test_long_sequence_not_truncated(tmp_path):
    """Input longer than 1022 residues: whole sequence runs, mean window capped at 1024."""
    path = save_random_esm2(tmp_path / "esm2_rand.pt")
    rng = np.random.default_rng(1)
    seqs = ["".join(rng.choice(list(RESIDUES[:20]), n)) for n in (1500, 1024, 1023, 30, 5)]
    model, alphabet = build_fair_esm_model(load_esm2_checkpoint(path))
    reference = published_embed(model, alphabet, seqs)
    ours = load_esm2(path, CPU, torch.float32).embed(seqs)
    assert (ours - reference).abs().max().item() <= 1e-5
    # The residues past 1024 still change the result through attention (no input truncation).
    changed = load_esm2(path, CPU, torch.float32).embed([seqs[0][:1024] + "W" * 476])
    assert (changed[0] - ours[0]).abs().max().item() > 1e-4


def test_bf16_close_to_fp32(tiny_esm_path, proteins, ours_fp32, subset):
    seqs = [proteins[1][i] for i in subset]
    bf16 = load_esm2(tiny_esm_path, CPU, torch.bfloat16)
    assert bf16._layers[0].qkv_w.dtype == torch.bfloat16 and bf16._layers[0].ln1_w.dtype == torch.float32
    got = bf16.embed(seqs)
    assert got.dtype == torch.float32
    cos = torch.nn.functional.cosine_similarity(got, ours_fp32[subset], dim=1)
    assert cos.min().item() >= 0.99, cos.min().item()


def test_random_model_fp16_runs(tmp_path):
    path = save_random_esm2(tmp_path / "esm2_rand.pt", num_layers=1)
    seqs = ["MKTAYIAKQR", "MSEQ"]
    fp32 = load_esm2(path, CPU, torch.float32).embed(seqs)
    fp16 = load_esm2(path, CPU, torch.float16).embed(seqs)
    assert torch.nn.functional.cosine_similarity(fp16, fp32, dim=1).min().item() >= 0.99


def test_empty_input(embedder_fp32):
    out = embedder_fp32.embed([])
    assert out.shape == (0, 32)


# ---------------------------------------------------------------- tokens


@settings(max_examples=40, deadline=None)
@given(st.lists(st.text(alphabet=RESIDUES, min_size=1, max_size=30), min_size=1, max_size=6))
def test_tokens_match_fair_esm_batch_converter(seqs):
    import esm

    tokens = esm1b_tokens()
    converter = esm.data.Alphabet.from_architecture("ESM-1b").get_batch_converter()
    _labels, _strs, expected = converter([(str(i), s) for i, s in enumerate(seqs)])
    codes, lengths = encode_sequences(seqs, tokens.lut)
    offsets = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    idx = np.arange(len(seqs))
    matrix = np.empty((len(seqs), lengths.max() + 2), np.int64)
    got = fill_token_matrix(matrix, idx, codes, offsets, lengths, tokens)
    assert np.array_equal(got, expected.numpy())


@pytest.mark.parametrize(
    "bad, char", [(["MKV", "MK*V"], "'*'"), (["mkv"], "'m'"), (["MKé"], "'é'"), (["M V"], "' '")]
)
def test_bad_character_is_input_error(bad, char):
    with pytest.raises(InputError, match=f"sequence {len(bad) - 1} .*{char}"):
        encode_sequences(bad, esm1b_tokens().lut)


def test_empty_sequence_is_input_error():
    with pytest.raises(InputError, match="empty"):
        encode_sequences(["MKV", ""], esm1b_tokens().lut)


# ---------------------------------------------------------------- batching


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 3000), min_size=1, max_size=60), st.integers(1, 20000))
def test_plan_batches_within_budget(lengths, budget):
    batches = plan_batches([n + 2 for n in lengths], budget)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(len(lengths)))
    padded = [[lengths[i] + 2 for i in b] for b in batches]
    for p in padded:
        assert len(p) == 1 or max(p) * len(p) <= budget
    maxima = [max(p) for p in padded]
    assert maxima == sorted(maxima, reverse=True)


def test_budget_estimate_and_shrink():
    gib = 1 << 30
    small = estimate_batch_tokens(2 * gib, 2560, 40, 2)
    large = estimate_batch_tokens(20 * gib, 2560, 40, 2)
    assert 1024 <= small < large <= 65536
    assert estimate_batch_tokens(0, 2560, 40, 2) == 1024
    assert estimate_batch_tokens(1 << 50, 2560, 40, 2) == 65536
    assert estimate_batch_tokens(8 * gib, 2560, 40, 4) < estimate_batch_tokens(8 * gib, 2560, 40, 2)
    assert shrink_budget(8000, 8000) == 4000
    assert shrink_budget(1, 1) == 1


def test_cpu_default_budget(embedder_fp32):
    assert embedder_fp32.batch_tokens == CPU_BATCH_TOKENS
    assert MEAN_WINDOW == 1024


# ---- rotary tables: fair-esm's FP32 values, and the same in every process

def _float64_angles(inv_freq: torch.Tensor, size: int) -> np.ndarray:
    freqs = np.outer(np.arange(size, dtype=np.float32), inv_freq.numpy()).astype(np.float32)
    return np.concatenate([freqs, freqs], axis=-1).astype(np.float64)


def test_rotary_tables_are_torch_fp32_values_within_tolerance():
    inv_freq = 1.0 / (10000 ** (torch.arange(0, 8, 2).float() / 8))
    cos, sin = rotary_tables(inv_freq, 1024)
    angles = _float64_angles(inv_freq, 1024)
    assert np.abs(cos.numpy() - np.cos(angles)).max() <= ROTARY_TOLERANCE
    assert np.abs(sin.numpy() - np.sin(angles)).max() <= ROTARY_TOLERANCE
    # fair-esm's own construction in a warm process: the same bits
    t = torch.arange(1024).type_as(inv_freq)
    emb = torch.cat((torch.outer(t, inv_freq),) * 2, dim=-1)
    assert torch.equal(cos, emb.cos()) and torch.equal(sin, emb.sin())


_FRESH_PROCESS = """
import hashlib, sys, torch
from virnucpro.models.esm2 import rotary_tables
inv_freq = 1.0 / (10000 ** (torch.arange(0, 8, 2).float() / 8))
cos, sin = rotary_tables(inv_freq, 1024)
print(hashlib.sha256(cos.numpy().tobytes() + sin.numpy().tobytes()).hexdigest())
"""


@pytest.mark.slow
def test_rotary_tables_identical_in_fresh_processes():
    """The table is the first trig a process computes: the case that came out off one time in five."""
    import subprocess
    import sys

    digests = {
        subprocess.run([sys.executable, "-c", _FRESH_PROCESS], check=True, capture_output=True, text=True).stdout
        for _ in range(8)
    }
    inv_freq = 1.0 / (10000 ** (torch.arange(0, 8, 2).float() / 8))
    cos, sin = rotary_tables(inv_freq, 1024)
    import hashlib

    assert digests == {hashlib.sha256(cos.numpy().tobytes() + sin.numpy().tobytes()).hexdigest() + "\n"}
