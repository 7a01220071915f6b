"""Helpers for the ESM-2 tests: a tiny random fair-esm model saved in the real checkpoint layout."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch


def save_random_esm2(
    path: Path, num_layers: int = 2, embed_dim: int = 64, heads: int = 4, seed: int = 0, **save_kwargs
) -> Path:
    """Build fair-esm's ``ESM2`` with random weights and save it like ``esm2_t36_3B_UR50D.pt``.

    LayerNorm parameters are perturbed too, so that they are exercised (fair-esm
    initialises them to 1 and 0).
    """
    import esm

    torch.manual_seed(seed)
    alphabet = esm.data.Alphabet.from_architecture("ESM-1b")
    model = esm.model.esm2.ESM2(
        num_layers=num_layers, embed_dim=embed_dim, attention_heads=heads, alphabet=alphabet
    )
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "layer_norm" in name:
                param.add_(0.1 * torch.randn_like(param))
    state = {f"encoder.{k}": v for k, v in model.state_dict().items() if not k.startswith("contact_head.")}
    cfg = argparse.Namespace(
        encoder_layers=num_layers,
        encoder_embed_dim=embed_dim,
        encoder_attention_heads=heads,
        token_dropout=True,
    )
    torch.save({"model": state, "cfg": {"model": cfg}}, path, **save_kwargs)
    return path


