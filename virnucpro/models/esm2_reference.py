"""The published method, run with fair-esm's own code: test oracle and benchmark baseline.

:func:`build_fair_esm_model` builds fair-esm's ``ESM2`` module from a checkpoint
read by :func:`virnucpro.models.esm2_checkpoint.load_esm2_checkpoint` (so it is
loaded safely, unlike fair-esm's ``load_model_and_alphabet_local``).
:func:`published_embed` reproduces the published ``extract_esm`` batching and
pooling: ``FastaBatchedDataset.get_batch_indices(toks_per_batch,
extra_toks_per_seq=1)``, fair-esm's batch converter (no input truncation), the
forward with ``repr_layers=[num_layers]`` and a mean over positions
``1 .. min(len, 1024)``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch

from virnucpro.models.esm2_checkpoint import Esm2Checkpoint

logger = logging.getLogger(__name__)

MEAN_WINDOW = 1024
"""Residues averaged per sequence (the published ``truncation_seq_length``)."""


def build_fair_esm_model(ckpt: Esm2Checkpoint, device: torch.device | str = "cpu"):
    """fair-esm's ``ESM2`` module with the checkpoint's weights, in eval mode, FP32.

    The contact-regression weights are not needed for embeddings; when absent
    they stay at their random initialisation (as fair-esm itself does, with a
    warning).

    Returns:
        ``(model, alphabet)``: ``esm.model.esm2.ESM2`` and the ESM-1b ``esm.data.Alphabet``.
    """
    import esm  # heavy import kept local: only the oracle and the benchmark need it

    alphabet = esm.data.Alphabet.from_architecture("ESM-1b")
    model = esm.model.esm2.ESM2(
        num_layers=ckpt.num_layers,
        embed_dim=ckpt.embed_dim,
        attention_heads=ckpt.attention_heads,
        alphabet=alphabet,
        token_dropout=ckpt.token_dropout,
    )
    result = model.load_state_dict(ckpt.state_dict, strict=False)
    missing = [k for k in result.missing_keys if not k.startswith("contact_head.")]
    if missing or result.unexpected_keys:
        raise ValueError(f"state dict mismatch: missing {missing}, unexpected {result.unexpected_keys}")
    return model.eval().to(device), alphabet


@torch.no_grad()
def published_embed(
    model,
    alphabet,
    seqs: Sequence[str],
    toks_per_batch: int = 2048,
    repr_layer: int | None = None,
) -> torch.Tensor:
    """Mean ESM-2 embeddings exactly as the published ``extract_esm`` computes them.

    Args:
        model: a fair-esm ``ESM2`` (e.g. from :func:`build_fair_esm_model`).
        alphabet: its ``esm.data.Alphabet``.
        seqs: protein sequences.
        toks_per_batch: the published batch budget (2048).
        repr_layer: layer to read; default the model's last (36 for the 3B model).

    Returns:
        float32 CPU tensor ``[len(seqs), embed_dim]`` in input order.
    """
    import esm

    layer = model.num_layers if repr_layer is None else repr_layer
    device = next(model.parameters()).device
    dataset = esm.data.FastaBatchedDataset([str(i) for i in range(len(seqs))], list(seqs))
    batches = dataset.get_batch_indices(toks_per_batch, extra_toks_per_seq=1)
    converter = alphabet.get_batch_converter()
    out = torch.empty(len(seqs), model.embed_dim, dtype=torch.float32)
    for batch in batches:
        labels, strs, toks = converter([(str(i), seqs[i]) for i in batch])
        reps = model(toks.to(device), repr_layers=[layer], return_contacts=False)["representations"][layer]
        reps = reps.to(device="cpu", dtype=torch.float32)
        for row, (label, seq) in enumerate(zip(labels, strs)):
            n = min(MEAN_WINDOW, len(seq))
            out[int(label)] = reps[row, 1 : n + 1].mean(0)
    return out
