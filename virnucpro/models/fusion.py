"""Optional ``torch.compile`` of the engines' per-layer functions, with a clean fallback.

Outside the matrix products, a transformer layer here is elementwise traffic:
ESM-2's FP32 rotary embedding and FP32 residual casts and adds, DNABERT-S's
gated GELU and residual adds. Compiling one layer (dynamic shapes, so every
batch length reuses one graph) lets Inductor fuse those into a few kernels
around the matmuls and attention.

Modes (:data:`COMPILE_MODES`), an engine argument:

* ``auto`` (default): compile on CUDA when Triton is importable; eager elsewhere
  (on the CPU, compiling costs tens of seconds and saves little).
* ``on``: compile wherever a compiler is available (CUDA with Triton, or the CPU with
  a C++ compiler); otherwise log why and run eager.
* ``off``: eager.

A compiled function that fails to build (or to run its first time) logs one
warning and is replaced by the eager function for the rest of the process; an
out-of-memory error is not a compile failure and propagates.
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
from collections.abc import Callable
from typing import Any

import torch

logger = logging.getLogger(__name__)

COMPILE_MODES: tuple[str, ...] = ("auto", "on", "off")


def compile_unavailable_reason(device: torch.device) -> str | None:
    """Why ``torch.compile`` (Inductor) cannot build kernels for ``device`` here; None if it can."""
    if not hasattr(torch, "compile"):
        return "this torch has no torch.compile"
    if device.type == "cuda":
        return None if importlib.util.find_spec("triton") is not None else "Triton is not installed"
    if device.type == "cpu":
        from torch._inductor import config

        cxx = config.cpp.cxx[0] if isinstance(config.cpp.cxx, tuple) else config.cpp.cxx
        found = any(shutil.which(name) for name in (cxx, "g++", "c++", "clang++") if name)
        return None if found else "no C++ compiler found for Inductor's CPU backend"
    return f"no Inductor backend for {device.type}"


def resolve_compile(mode: str, device: torch.device) -> bool:
    """Whether to compile under ``mode`` on ``device`` (see the module docstring).

    Raises:
        ValueError: ``mode`` is not one of :data:`COMPILE_MODES`.
    """
    if mode not in COMPILE_MODES:
        raise ValueError(f"compile mode must be one of {', '.join(COMPILE_MODES)}, got {mode!r}")
    if mode == "off":
        return False
    if mode == "auto" and device.type != "cuda":
        return False
    reason = compile_unavailable_reason(device)
    if reason is not None:
        log = logger.warning if mode == "on" else logger.info
        log("torch.compile unavailable on %s (%s): running eager", device, reason)
        return False
    return True


class FusedFunction:
    """``fn`` compiled with dynamic shapes, falling back to ``fn`` itself if compilation fails.

    Attributes:
        compiled: True while the compiled version is in use.
    """

    def __init__(self, fn: Callable[..., Any], enabled: bool, label: str, backend: Any = "inductor") -> None:
        self._eager = fn
        self._label = label
        self._compiled: Callable[..., Any] | None = (
            torch.compile(fn, dynamic=True, backend=backend) if enabled else None
        )

    @property
    def compiled(self) -> bool:
        return self._compiled is not None

    def __call__(self, *args: Any) -> Any:
        if self._compiled is None:
            return self._eager(*args)
        try:
            return self._compiled(*args)
        except torch.OutOfMemoryError:
            raise
        except Exception as exc:  # any build/first-run failure of the compiler: eager is always correct
            logger.warning("%s: torch.compile failed (%s); running eager from now on",
                           self._label, str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__)
            self._compiled = None
            return self._eager(*args)
