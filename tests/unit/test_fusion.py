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
