"""Optional ``torch.compile`` of the engines' per-layer functions, with a checked fallback.

Outside the matrix products, a transformer layer here is elementwise traffic:
ESM-2's FP32 rotary embedding and FP32 residual casts and adds, DNABERT-S's
gated GELU and residual adds. Compiling one layer lets Inductor fuse those into
a few kernels around the matmuls and attention.

Modes (:data:`COMPILE_MODES`), an engine argument:

* ``auto`` (default): compile on CUDA when Triton and a C compiler are there; eager
  elsewhere (on the CPU, compiling costs tens of seconds and saves little).
* ``on``: compile wherever a compiler is available (CUDA with Triton and a C compiler,
  or the CPU with a C++ compiler); otherwise log why and run eager.
* ``off``: eager.

Shapes: only the activation dimensions the caller names (batch and length) are
marked dynamic (:func:`torch._dynamo.maybe_mark_dynamic`); weights, the width and
the head count stay static, so LayerNorm and the projections compile as
fixed-width kernels. A dimension of size 1 is specialised by dynamo, so a batch of
one sequence is a graph of its own: the engines' ``warm_up`` runs every variant
before any work, so no graph is built mid-run.

Compiled artefacts go to an on-disk cache under virnucpro's cache directory
(``TORCHINDUCTOR_CACHE_DIR``, unless already set), so a second run loads them
instead of compiling; Inductor's compile pool honours ``TORCHINDUCTOR_COMPILE_THREADS``.

A compiled function that fails to build (or to run its first time) logs one
warning and is replaced by the eager function for the rest of the process;
``compiled`` then reads False, and the acceptance fails on it. Errors that are
not the compiler's are never swallowed: out of memory (a cuBLAS allocation
failure included) and CUDA device errors propagate to the batching loop and the
worker, which know what to do with them.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

logger = logging.getLogger(__name__)

COMPILE_MODES: tuple[str, ...] = ("auto", "on", "off")
RECOMPILE_LIMIT = 64
"""Graphs dynamo may keep per layer function (the default 8 is reached by two engines at two precisions
with their mask and batch-of-one variants; past it dynamo would run eager without an error)."""

# Text of errors that come from the device or its libraries, not from the compiler (lower case).
_DEVICE_ERROR_PATTERNS = (
    "out of memory", "cublas_status", "cudnn_status", "cuda error", "cuda driver error",
    "illegal memory access", "device-side assert", "launch timed out", "launch failure", "ecc error",
    "misaligned address", "illegal instruction",
)


def _c_compiler() -> str | None:
    """A C compiler Triton can build its launcher with (``CC``, else cc/gcc/clang), or None."""
    names = [os.environ.get("CC", ""), "cc", "gcc", "clang"]
    return next((found for name in names if name and (found := shutil.which(name))), None)


def compile_unavailable_reason(device: torch.device) -> str | None:
    """Why ``torch.compile`` (Inductor) cannot build kernels for ``device`` here; None if it can.

    On CUDA that takes Triton *and* a C compiler (Triton compiles a small C launcher per kernel);
    on the CPU a C++ compiler.
    """
    if not hasattr(torch, "compile"):
        return "this torch has no torch.compile"
    if device.type == "cuda":
        if importlib.util.find_spec("triton") is None:
            return "Triton is not installed"
        return None if _c_compiler() else "no C compiler (cc, gcc, clang or $CC) for Triton's kernel launcher"
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


def compile_cache_dir() -> str:
    """Where Inductor keeps compiled graphs and kernels: ``$TORCHINDUCTOR_CACHE_DIR``, else
    ``<virnucpro cache>/inductor`` (set in the environment, so Triton's cache follows it)."""
    if not os.environ.get("TORCHINDUCTOR_CACHE_DIR"):
        from virnucpro.models.locations import cache_dir

        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(cache_dir() / "inductor")
    return os.environ["TORCHINDUCTOR_CACHE_DIR"]


def _configure_compiler() -> None:
    """Process-wide compiler settings, applied before the first compile (idempotent)."""
    import torch._dynamo.config as dynamo_config
    import torch._inductor.config as inductor_config

    compile_cache_dir()
    inductor_config.fx_graph_cache = True
    dynamo_config.recompile_limit = max(dynamo_config.recompile_limit, RECOMPILE_LIMIT)
    dynamo_config.fail_on_recompile_limit_hit = True  # an error (so `compiled` turns False), not silent eager
    threads = os.environ.get("TORCHINDUCTOR_COMPILE_THREADS", "")
    if threads.isdigit() and int(threads) >= 1:
        inductor_config.compile_threads = int(threads)


def is_device_error(exc: BaseException) -> bool:
    """True for an error raised by the device or its libraries (out of memory, cuBLAS, a CUDA error),
    found through the exception's causes: those are never compile failures."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, torch.OutOfMemoryError) or type(current).__name__ == "AcceleratorError":
            return True
        text = str(current).lower()
        if any(pattern in text for pattern in _DEVICE_ERROR_PATTERNS):
            return True
        current = current.__cause__ or current.__context__
    return False


class FusedFunction:
    """``fn`` compiled with the named activation dimensions dynamic, falling back to ``fn`` itself
    if the compiler fails.

    Args:
        fn: the function to compile (called positionally).
        enabled: compile at all (see :func:`resolve_compile`).
        label: model name for log messages.
        backend: the ``torch.compile`` backend.
        dynamic_dims: positional argument index -> the dimensions of that tensor argument that vary
            from call to call (batch and length); every other dimension and argument is static.

    Attributes:
        compiled: True while the compiled version is in use.
        fallback_reason: why compilation was given up, if it was.
    """

    def __init__(self, fn: Callable[..., Any], enabled: bool, label: str, backend: Any = "inductor",
                 dynamic_dims: Mapping[int, Sequence[int]] | None = None) -> None:
        self._eager = fn
        self._label = label
        self._dynamic = {int(k): tuple(v) for k, v in (dynamic_dims or {}).items()}
        self.fallback_reason: str | None = None
        self._compiled: Callable[..., Any] | None = None
        if enabled:
            _configure_compiler()
            self._compiled = torch.compile(fn, dynamic=None, backend=backend)

    @property
    def compiled(self) -> bool:
        return self._compiled is not None

    def __call__(self, *args: Any) -> Any:
        if self._compiled is None:
            return self._eager(*args)
        for index, dims in self._dynamic.items():
            tensor = args[index]
            if isinstance(tensor, torch.Tensor):
                for dim in dims:
                    torch._dynamo.maybe_mark_dynamic(tensor, dim)
        try:
            return self._compiled(*args)
        except Exception as exc:  # a build/first-run failure of the compiler: eager is always correct
            if is_device_error(exc):
                raise  # out of memory, cuBLAS, CUDA: the caller's business, and compiling stays on
            text = str(exc).strip()
            self.fallback_reason = text.splitlines()[0][:200] if text else type(exc).__name__
            logger.warning("%s: torch.compile failed (%s); running eager from now on (compiled=False)",
                           self._label, self.fallback_reason)
            self._compiled = None
            return self._eager(*args)


def _timed_call(call: Callable[[], object], device: torch.device) -> float:
    began = time.perf_counter()
    call()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - began


def warm_variants(variants: Sequence[tuple[str, Callable[[], object]]], device: torch.device,
                  fused: Callable[[], FusedFunction | None], label: str) -> dict[str, Any]:
    """Run each named batch variant twice, in inference mode (as the engines' batching loop runs),
    so every graph is built before any work; the engines' ``warm_up`` supplies the variants.

    Returns:
        ``seconds``: wall time of it all; ``compile_seconds``: the first calls' time over the
        repeats' (what building graphs and choosing kernels cost); ``compiled``: the layers run
        compiled now; ``compile_enabled``: compiling was asked for and possible;
        ``fallback_reason``: why it fell back to eager, if it did; ``variants``: the names run.
    """
    began = time.perf_counter()
    compile_seconds = 0.0
    with torch.inference_mode():
        for _name, call in variants:
            first = _timed_call(call, device)
            compile_seconds += max(0.0, first - _timed_call(call, device))
    function = fused()
    compiled = function is not None and function.compiled
    result: dict[str, Any] = {
        "seconds": time.perf_counter() - began, "compiled": compiled, "compile_seconds": compile_seconds,
        "compile_enabled": compiled or (function is not None and function.fallback_reason is not None),
        "fallback_reason": function.fallback_reason if function is not None else None,
        "variants": [name for name, _call in variants],
    }
    if result["fallback_reason"]:
        logger.warning("%s: warm-up fell back to eager (%s)", label, result["fallback_reason"])
    logger.info("%s warmed up on %s: %d variants in %.1f s (%.1f s compiling), %s", label, device,
                len(variants), result["seconds"], compile_seconds, "compiled" if compiled else "eager")
    return result
