"""Scaled-dot-product attention backends: checked against FP64 at our shapes, then pinned.

``F.scaled_dot_product_attention`` picks a kernel (math, flash, memory-efficient,
cuDNN) from the device, dtype and mask. cuDNN attention has had silent
correctness bugs, and which kernel runs depends on the mask, so the engines do
not leave the choice open: they run attention under :func:`attention_context`,
which allows only the *pinned* set. The pinned set is the default allowed set
(:data:`DEFAULT_ALLOWED`: cuDNN is left out until it has passed on the hardware)
or the ``VIRNUCPRO_SDPA_BACKENDS`` override (comma-separated names), narrowed on
CUDA to the backends that pass :func:`check_attention_backends` on that device.

:func:`check_attention_backends` runs every backend on the shapes the engines
use (ESM-2 3B unmasked and with key padding, DNABERT-S with its additive ALiBi +
padding bias) and compares with an FP64 softmax computed from the same rounded
inputs, so only the kernel's own error is measured. ``scripts/gpu_acceptance.py``
reports its rows as they are.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from virnucpro.models.alibi import alibi_slopes, attention_bias

logger = logging.getLogger(__name__)

BACKENDS: dict[str, SDPBackend] = {
    "math": SDPBackend.MATH,
    "flash": SDPBackend.FLASH_ATTENTION,
    "efficient": SDPBackend.EFFICIENT_ATTENTION,
    "cudnn": SDPBackend.CUDNN_ATTENTION,
}
DEFAULT_ALLOWED: tuple[str, ...] = ("flash", "efficient", "math")
"""Backends the engines may use before any check: cuDNN only once it has passed (set the env override)."""

ENV_OVERRIDE = "VIRNUCPRO_SDPA_BACKENDS"

# Max abs error allowed, per unit of max |reference|: a few ulps of the dtype at the output's magnitude.
TOLERANCE: dict[torch.dtype, float] = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}


@dataclass(frozen=True)
class AttentionShape:
    """One attention call as an engine makes it: ``[batch, heads, length, head_dim]`` plus its mask."""

    name: str
    batch: int
    heads: int
    length: int
    head_dim: int
    mask: str  # "none" | "key_padding" (bool, True = attend) | "alibi_padding" (additive float)
    scale: float | None = None  # None: SDPA's 1/sqrt(head_dim); ESM-2 pre-scales q and passes 1.0


# ESM-2 3B: 40 heads of 64; a 500 bp frame is ~166 residues + BOS/EOS. DNABERT-S: 12 heads of 64,
# ~110 tokens for 500 bp, padded to a multiple of 8.
ENGINE_SHAPES: tuple[AttentionShape, ...] = (
    AttentionShape("esm2_unmasked", 4, 40, 168, 64, "none", scale=1.0),
    AttentionShape("esm2_padded", 4, 40, 168, 64, "key_padding", scale=1.0),
    AttentionShape("dnabert_alibi_padded", 4, 12, 112, 64, "alibi_padding"),
)


def _inputs(shape: AttentionShape, device: torch.device, dtype: torch.dtype, seed: int) -> tuple[
    torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None
]:
    gen = torch.Generator().manual_seed(seed)
    size = (shape.batch, shape.heads, shape.length, shape.head_dim)
    q_scale = shape.head_dim**-0.5 if shape.scale == 1.0 else 1.0  # ESM-2's q arrives pre-scaled
    q, k, v = (torch.randn(size, generator=gen) for _ in range(3))
    q = q * q_scale
    # Real batches are sorted by length: the last rows are shorter than the first.
    lengths = torch.linspace(shape.length, shape.length // 2, shape.batch).round().long()
    keep = torch.arange(shape.length)[None, :] < lengths[:, None]  # [B, T]
    mask: torch.Tensor | None = None
    if shape.mask == "key_padding":
        mask = keep[:, None, None, :]
    elif shape.mask == "alibi_padding":
        slopes = torch.tensor(alibi_slopes(shape.heads), dtype=torch.float32)
        mask = attention_bias(slopes, keep, dtype)
    cast = [t.to(device=device, dtype=dtype) for t in (q, k, v)]
    return cast[0], cast[1], cast[2], None if mask is None else mask.to(device)


def _reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None,
               scale: float | None) -> torch.Tensor:
    """Plain FP64 softmax attention on the CPU from the (already rounded) inputs."""
    q, k, v = (t.detach().cpu().double() for t in (q, k, v))
    s = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = (q @ k.transpose(-1, -2)) * s
    if mask is not None:
        mask = mask.cpu()
        scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask.double()
    return torch.softmax(scores, dim=-1) @ v


def check_attention_backends(
    device: torch.device | str,
    dtype: torch.dtype,
    shapes: tuple[AttentionShape, ...] = ENGINE_SHAPES,
    backends: tuple[str, ...] = tuple(BACKENDS),
) -> list[dict[str, object]]:
    """Run each SDPA backend alone on each engine shape and compare with an FP64 reference.

    Args:
        device: where to run the kernels (``cpu`` runs the math and CPU flash kernels;
            the others report ``unavailable`` there).
        dtype: the engines' matmul dtype (float32, bfloat16 or float16).
        shapes: the attention calls to check (default: :data:`ENGINE_SHAPES`).
        backends: names from :data:`BACKENDS`.

    Returns:
        One dict per (backend, shape): ``backend``, ``shape``, ``dtype``, ``device``,
        ``max_abs_error`` (float, None when the kernel did not run), ``tolerance``,
        ``verdict`` (``pass`` | ``fail`` | ``unavailable``) and ``detail`` (why, when not ``pass``).
    """
    device = torch.device(device)
    rows: list[dict[str, object]] = []
    for seed, shape in enumerate(shapes):
        q, k, v, mask = _inputs(shape, device, dtype, seed)
        ref = _reference(q, k, v, mask, shape.scale)
        tolerance = TOLERANCE[dtype] * max(1.0, ref.abs().max().item())
        for name in backends:
            row: dict[str, object] = {
                "backend": name, "shape": shape.name, "dtype": str(dtype).removeprefix("torch."),
                "device": str(device), "max_abs_error": None, "tolerance": tolerance,
            }
            try:
                with torch.inference_mode(), sdpa_kernel([BACKENDS[name]]):
                    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=shape.scale)
            except RuntimeError as exc:  # "No available kernel": not built, not this device/dtype/mask
                row.update(verdict="unavailable", detail=str(exc).strip().splitlines()[0][:200])
                rows.append(row)
                continue
            error = (out.detach().cpu().double() - ref).abs().max().item()
            ok = math.isfinite(error) and error <= tolerance
            row.update(max_abs_error=error, verdict="pass" if ok else "fail",
                       detail="" if ok else f"max abs error {error:.3g} > {tolerance:.3g}")
            rows.append(row)
    return rows


def passing_backends(rows: list[dict[str, object]]) -> tuple[str, ...]:
    """Backends that passed at least one shape and failed none.

    ``unavailable`` on a shape is not a failure: SDPA cannot pick that kernel there
    either (flash takes no mask, so it only ever serves ESM-2's unpadded batches).
    """
    names = dict.fromkeys(str(r["backend"]) for r in rows)
    verdicts = {n: {r["verdict"] for r in rows if r["backend"] == n} for n in names}
    return tuple(n for n in names if "pass" in verdicts[n] and "fail" not in verdicts[n])


def allowed_backend_names() -> tuple[str, ...]:
    """The allowed set before checks: ``VIRNUCPRO_SDPA_BACKENDS`` if set, else :data:`DEFAULT_ALLOWED`.

    Raises:
        ValueError: the override names an unknown backend or none at all.
    """
    raw = os.environ.get(ENV_OVERRIDE, "").strip()
    if not raw:
        return DEFAULT_ALLOWED
    names = tuple(dict.fromkeys(n.strip().lower() for n in raw.split(",") if n.strip()))
    unknown = [n for n in names if n not in BACKENDS]
    if unknown or not names:
        raise ValueError(f"{ENV_OVERRIDE}={raw!r}: use a comma-separated list of {', '.join(BACKENDS)}")
    return names


_PINNED: dict[tuple[str, torch.dtype], tuple[SDPBackend, ...]] = {}


def pin_backends(device: torch.device | str, dtype: torch.dtype, verify: bool | None = None) -> tuple[str, ...]:
    """Fix the backends the engines use on ``device`` in ``dtype`` for this process; returns their names.

    The allowed set (:func:`allowed_backend_names`) is narrowed, when ``verify``
    (default: on CUDA), to the backends that pass :func:`check_attention_backends`
    there. If none passes, the math kernel is kept so the engines still run, and
    an error is logged.
    """
    device = torch.device(device)
    names = allowed_backend_names()
    if verify if verify is not None else device.type == "cuda":
        rows = check_attention_backends(device, dtype, backends=names)
        for row in rows:
            if row["verdict"] != "pass":
                logger.info("attention backend %s on %s: %s (%s)", row["backend"], row["shape"],
                            row["verdict"], row["detail"])
        passed = passing_backends(rows)
        if not passed:
            logger.error("no allowed attention backend passed the FP64 check on %s in %s; using math", device, dtype)
            passed = ("math",)
        names = passed
    _PINNED[(str(device), dtype)] = tuple(BACKENDS[n] for n in names)
    logger.debug("attention backends pinned on %s in %s: %s", device, dtype, ", ".join(names))
    return names


@contextlib.contextmanager
def attention_context(device: torch.device, dtype: torch.dtype) -> Iterator[None]:
    """Run the enclosed attention calls with only the pinned backends (pinning on first use)."""
    key = (str(device), dtype)
    if key not in _PINNED:
        pin_backends(device, dtype)
    with sdpa_kernel(list(_PINNED[key])):
        yield
