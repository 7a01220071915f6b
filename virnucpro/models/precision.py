"""Device and numeric-precision choices shared by both embedding engines.

``bf16``/``fp16`` mean: weights and matrix products in the low-precision type,
while the residual stream, LayerNorm, softmax and mean pooling stay FP32.
``auto`` picks BF16 on CUDA devices of compute capability >= 8.0 (Ampere and
newer) and FP32 everywhere else. Importing this module imports torch; the CLI
only calls it inside workers or after argument parsing.
"""

from __future__ import annotations

import logging

import torch

logger = logging.getLogger(__name__)

PRECISION_CHOICES = ("auto", "fp32", "bf16", "fp16")
DEVICE_HELP = "auto, cpu, cuda or cuda:N"

_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(spec: str = "auto") -> torch.device:
    """Turn ``auto|cpu|cuda|cuda:N`` into a torch device (``auto``: CUDA when present).

    Raises:
        ValueError: for an unknown spec or a CUDA device that is not there.
    """
    spec = spec.strip().lower()
    if spec == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "cuda" or spec.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {spec!r} asked for, but CUDA is not available on this machine")
        index = 0 if spec == "cuda" else int(spec.split(":", 1)[1])
        count = torch.cuda.device_count()
        if not 0 <= index < count:
            raise ValueError(f"device {spec!r} does not exist: {count} CUDA device(s) visible")
        return torch.device(f"cuda:{index}")
    raise ValueError(f"unknown device {spec!r}: use {DEVICE_HELP}")


def supports_bf16(device: torch.device) -> bool:
    """True on CUDA devices of compute capability 8.0 or newer."""
    if device.type != "cuda":
        return False
    major, _minor = torch.cuda.get_device_capability(device)
    return major >= 8


def resolve_precision(spec: str, device: torch.device) -> torch.dtype:
    """Map ``auto|fp32|bf16|fp16`` to the dtype used for weights and matrix products."""
    spec = spec.strip().lower()
    if spec == "auto":
        if device.type != "cuda":
            return torch.float32
        # Probed here, in the worker that owns the device (the parent may not have known it).
        major, minor = torch.cuda.get_device_capability(device)
        dtype = torch.bfloat16 if major >= 8 else torch.float32
        logger.info("--precision auto on %s: compute capability %d.%d -> %s", device, major, minor,
                    "bf16" if dtype == torch.bfloat16 else "fp32 (no fast BF16 before compute capability 8.0)")
        return dtype
    if spec not in _DTYPES:
        raise ValueError(f"unknown precision {spec!r}: use one of {', '.join(PRECISION_CHOICES)}")
    return _DTYPES[spec]


def precision_name(dtype: torch.dtype) -> str:
    """The short name (``fp32``, ``bf16``, ``fp16``) of a dtype from :func:`resolve_precision`."""
    for name, candidate in _DTYPES.items():
        if candidate == dtype:
            return name
    raise ValueError(f"unsupported dtype {dtype}")
