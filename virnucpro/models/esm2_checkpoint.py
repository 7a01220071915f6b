"""Safe loading of fair-esm ESM-2 checkpoint files (SPEC 5).

An ESM-2 ``.pt`` file is a pickled dict ``{"model": state_dict, "cfg": {"model":
argparse.Namespace(...)}}``. fair-esm 2.0.0 reads it with a plain ``torch.load``,
which fails on torch >= 2.6 (``weights_only`` became the default) and would run
arbitrary code from the file on older versions. We read it with
the shared weights-only loader (:mod:`virnucpro.models.safe_load`) and allow exactly one extra type, ``argparse.Namespace``;
a file asking for anything else is refused with the type named. There is no
fallback to unrestricted unpickling.

Hyper-parameters come from ``cfg["model"]`` (layers, width, heads,
token_dropout), never from the file name.
"""

from __future__ import annotations

import argparse
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from virnucpro.errors import ModelNotAvailableError
from virnucpro.models.safe_load import load_weights_only

logger = logging.getLogger(__name__)

_ALLOWED_GLOBALS = [argparse.Namespace]
_ALLOWED_TEXT = "tensors and argparse.Namespace"
_STATE_PREFIX = re.compile(r"^(encoder\.sentence_encoder\.|encoder\.)")


@dataclass(frozen=True)
class Esm2Checkpoint:
    """A loaded ESM-2 checkpoint: hyper-parameters plus the (prefix-stripped) state dict.

    Attributes:
        path: the file it came from.
        num_layers: transformer layers (``encoder_layers``).
        embed_dim: model width (``encoder_embed_dim``).
        attention_heads: heads per layer (``encoder_attention_heads``).
        token_dropout: whether embeddings are rescaled for token dropout.
        state_dict: fair-esm ``ESM2`` key names (``layers.0.self_attn.q_proj.weight``...),
            tensors on the CPU as stored (possibly memory-mapped).
    """

    path: Path
    num_layers: int
    embed_dim: int
    attention_heads: int
    token_dropout: bool
    state_dict: dict[str, torch.Tensor]


def safe_torch_load(path: Path) -> Any:
    """Weights-only ``torch.load`` with only ``argparse.Namespace`` allow-listed.

    Memory-maps zip-format files (the 3B checkpoint is 11 GiB in FP32) and falls
    back to a normal read for legacy-format files.

    Raises:
        UnsafeCheckpointError: the pickle asks for a type outside the allow-list.
        ModelNotAvailableError: missing, unreadable, truncated or corrupt file.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelNotAvailableError(f"ESM-2 checkpoint not found: {path}")
    return load_weights_only(path, _ALLOWED_GLOBALS, what="ESM-2 checkpoint", allowed_text=_ALLOWED_TEXT, mmap=True)


def load_esm2_checkpoint(path: Path) -> Esm2Checkpoint:
    """Read and validate an ESM-2 checkpoint file.

    Args:
        path: a fair-esm ESM-2 ``.pt`` file (e.g. ``esm2_t36_3B_UR50D.pt``).

    Returns:
        The hyper-parameters and the state dict with fair-esm's ``encoder.`` prefixes removed.

    Raises:
        UnsafeCheckpointError: the file needs a type outside the allow-list.
        ModelNotAvailableError: unreadable, not an ESM-2 checkpoint (e.g. ESM-1 ``args``
            layout), or missing weights.
    """
    path = Path(path)
    data = safe_torch_load(path)
    if not isinstance(data, dict) or "model" not in data:
        raise ModelNotAvailableError(f"{path} is not a fair-esm checkpoint (no 'model' entry)")
    cfg = data.get("cfg")
    if not isinstance(cfg, dict) or "model" not in cfg:
        if "args" in data:
            raise ModelNotAvailableError(
                f"{path} is an ESM-1 style checkpoint ('args'); only ESM-2 checkpoints ('cfg') are supported"
            )
        raise ModelNotAvailableError(f"{path} is not an ESM-2 checkpoint (no cfg['model'] entry)")
    args = cfg["model"]
    try:
        num_layers = int(args.encoder_layers)
        embed_dim = int(args.encoder_embed_dim)
        heads = int(args.encoder_attention_heads)
        token_dropout = bool(getattr(args, "token_dropout", True))
    except (AttributeError, TypeError, ValueError) as exc:
        raise ModelNotAvailableError(f"{path}: ESM-2 cfg lacks a hyper-parameter: {exc}") from exc
    if num_layers < 1 or embed_dim < 1 or heads < 1 or embed_dim % heads:
        raise ModelNotAvailableError(
            f"{path}: invalid ESM-2 cfg (layers={num_layers}, dim={embed_dim}, heads={heads})"
        )
    raw = data["model"]
    if not isinstance(raw, dict):
        raise ModelNotAvailableError(f"{path}: 'model' entry is not a state dict")
    state = {_STATE_PREFIX.sub("", name): value for name, value in raw.items()}
    _check_keys(path, state, num_layers, embed_dim)
    logger.debug("ESM-2 checkpoint %s: %d layers, dim %d, %d heads", path, num_layers, embed_dim, heads)
    return Esm2Checkpoint(path, num_layers, embed_dim, heads, token_dropout, state)


def _check_keys(path: Path, state: dict[str, Any], num_layers: int, embed_dim: int) -> None:
    """Raise ModelNotAvailableError when a weight our forward needs is absent or misshapen."""
    needed: dict[str, tuple[int, ...] | None] = {"embed_tokens.weight": None, "emb_layer_norm_after.weight": (embed_dim,),
              "emb_layer_norm_after.bias": (embed_dim,)}
    for i in range(num_layers):
        p = f"layers.{i}."
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            needed[f"{p}self_attn.{proj}.weight"] = (embed_dim, embed_dim)
            needed[f"{p}self_attn.{proj}.bias"] = (embed_dim,)
        for norm in ("self_attn_layer_norm", "final_layer_norm"):
            needed[f"{p}{norm}.weight"] = (embed_dim,)
            needed[f"{p}{norm}.bias"] = (embed_dim,)
        needed[f"{p}fc1.weight"] = (4 * embed_dim, embed_dim)
        needed[f"{p}fc1.bias"] = (4 * embed_dim,)
        needed[f"{p}fc2.weight"] = (embed_dim, 4 * embed_dim)
        needed[f"{p}fc2.bias"] = (embed_dim,)
    missing = [k for k in needed if not isinstance(state.get(k), torch.Tensor)]
    if missing:
        raise ModelNotAvailableError(
            f"{path}: ESM-2 checkpoint lacks {len(missing)} weight(s), e.g. {missing[0]}"
        )
    for key, shape in needed.items():
        if shape is not None and tuple(state[key].shape) != shape:
            raise ModelNotAvailableError(
                f"{path}: {key} has shape {tuple(state[key].shape)}, expected {shape}"
            )
    emb = state["embed_tokens.weight"]
    if emb.ndim != 2 or emb.shape[1] != embed_dim:
        raise ModelNotAvailableError(f"{path}: embed_tokens.weight has shape {tuple(emb.shape)}")
