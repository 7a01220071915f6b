"""torch.compile of the engine layers: modes, clean fallback, and equality with the eager layers."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from tests.conftest import read_small_fasta as read_fasta
from virnucpro.models.dnabert_s import DnabertConfig, DnabertEncoder, load_dnabert_s
from virnucpro.models.esm2 import load_esm2
from virnucpro.models.fusion import FusedFunction, compile_unavailable_reason, resolve_compile

CPU = torch.device("cpu")


def test_modes_on_the_cpu() -> None:
    assert resolve_compile("off", CPU) is False
    assert resolve_compile("auto", CPU) is False  # compiling on the CPU costs more than it saves
    assert resolve_compile("on", CPU) is (compile_unavailable_reason(CPU) is None)
    with pytest.raises(ValueError, match="compile mode must be one of auto, on, off"):
        resolve_compile("yes", CPU)
    config = DnabertConfig(8, 1, 2, 16, 1e-12, 16)
    with pytest.raises(ValueError, match="compile mode"):
        DnabertEncoder(config, compile="always")


def _broken_backend(gm, example_inputs):  # a compiler backend that cannot build anything
    raise RuntimeError("no kernels today")


def test_a_failing_compiler_falls_back_to_eager_once(caplog: pytest.LogCaptureFixture) -> None:
    def layer(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return x + torch.nn.functional.gelu(x @ w)

    fused = FusedFunction(layer, True, "test layer", backend=_broken_backend)
    assert fused.compiled
    x, w = torch.randn(3, 4), torch.randn(4, 4)
    with caplog.at_level(logging.WARNING, logger="virnucpro.models.fusion"):
        first = fused(x, w)
        second = fused(x, w)
    assert torch.equal(first, layer(x, w)) and torch.equal(second, first)
    assert not fused.compiled
    assert sum("torch.compile failed" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.parametrize("error", [
    torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`"),
    RuntimeError("CUDA error: CUBLAS_STATUS_EXECUTION_FAILED when calling `cublasGemmEx(...)`"),
    RuntimeError("CUDA error: an illegal memory access was encountered"),
    RuntimeError("CUDA error: the launch timed out and was terminated"),
])
def test_device_errors_propagate_and_leave_compilation_on(error: Exception) -> None:
    """Only the compiler's own failures switch compilation off; the device's go to the caller."""
    def backend(gm, example_inputs):
        def run(*args):
            raise error
        return run

    fused = FusedFunction(lambda x: x * 2, True, "device error", backend=backend)
    with pytest.raises(type(error)):
        fused(torch.zeros(2, 3))
    assert fused.compiled and fused.fallback_reason is None


def test_only_batch_and_length_are_dynamic() -> None:
    """The graph sees symbolic batch and length, but the width, the weights and `heads` as numbers."""
    graphs: list[list[object]] = []

    def backend(gm, example_inputs):
        values = [node.meta.get("example_value") for node in gm.graph.nodes if node.op == "placeholder"]
        graphs.append([tuple(str(d) for d in v.shape) if isinstance(v, torch.Tensor) else str(v) for v in values])
        return gm.forward

    def layer(x: torch.Tensor, w: torch.Tensor, heads: int) -> torch.Tensor:
        return (x @ w).view(x.shape[0], x.shape[1], heads, -1).sum(-1)

    fused = FusedFunction(layer, True, "dims", backend=backend, dynamic_dims={0: (0, 1)})
    w = torch.randn(8, 8)
    for batch, length in ((2, 8), (3, 16), (5, 24)):
        x = torch.randn(batch, length, 8)
        assert torch.equal(fused(x, w, 4), layer(x, w, 4))
    assert len(graphs) == 1, graphs  # one graph for every batch and length > 1
    tensors = [shape for shape in graphs[0] if isinstance(shape, tuple)]
    assert ("8", "8") in tensors  # the weight is static
    x_shape = next(shape for shape in tensors if len(shape) == 3)
    assert x_shape[2] == "8" and not x_shape[0].isdigit() and not x_shape[1].isdigit(), x_shape
    assert not any(isinstance(v, str) and v == "4" for v in graphs[0])  # heads is a constant, no input


def test_compile_needs_a_c_compiler_on_cuda(monkeypatch) -> None:
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object())  # "Triton is installed"
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("CC", raising=False)
    assert "C compiler" in (compile_unavailable_reason(torch.device("cuda")) or "")


def test_the_compile_cache_is_under_the_user_cache(monkeypatch, tmp_path) -> None:
    from virnucpro.models.fusion import compile_cache_dir

    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    monkeypatch.setenv("VIRNUCPRO_CACHE", str(tmp_path))
    assert compile_cache_dir() == str(tmp_path / "inductor")
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "/elsewhere")
    assert compile_cache_dir() == "/elsewhere"


def test_out_of_memory_is_not_a_compile_failure() -> None:
    def oom(x: torch.Tensor) -> torch.Tensor:
        raise torch.OutOfMemoryError("simulated")

    fused = FusedFunction(oom, False, "oom")
    with pytest.raises(torch.OutOfMemoryError):
        fused(torch.zeros(1))


@pytest.mark.slow  # compiling on 2 shared cores takes about a minute per engine
@pytest.mark.skipif(compile_unavailable_reason(CPU) is not None, reason="no C++ compiler for Inductor")
def test_compiled_layers_equal_eager_on_the_fixture_models(tiny_ref: Path) -> None:
    """FP32 compiled vs eager within SPEC 9's 1e-5, on padded and unpadded batches of both engines."""
    _ids, proteins = read_fasta(tiny_ref / "expected" / "contigs_identified_protein.faa")
    _ids, frames = read_fasta(tiny_ref / "expected" / "contigs_identified_nucleotide.fa")
    esm_path, dnabert_dir = tiny_ref / "models" / "esm2_t36_tiny.pt", tiny_ref / "models" / "dnabert_tiny"
    same_length = [s for s in proteins if len(s) == len(proteins[0])][:3]
    esm = load_esm2(esm_path, CPU, torch.float32, "off"), load_esm2(esm_path, CPU, torch.float32, "on")
    dnabert = (load_dnabert_s(dnabert_dir, CPU, torch.float32, "off"),
               load_dnabert_s(dnabert_dir, CPU, torch.float32, "on"))
    for (eager, fused), batches in ((esm, [proteins[:6], same_length]), (dnabert, [frames[:6]])):
        for batch in batches:
            difference = (fused.embed(batch) - eager.embed(batch)).abs().max().item()
            assert difference < 1e-5, difference
    assert esm[1].compiled and dnabert[1].encoder.compiled  # no silent fallback on this machine
    assert not esm[0].compiled and not dnabert[0].encoder.compiled
