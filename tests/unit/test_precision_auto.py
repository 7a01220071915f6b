"""``--precision auto`` for GPU workers: decided from NVML where it can tell, probed in the worker where not."""

from __future__ import annotations

import logging

import pytest
import torch

from virnucpro.models.precision import resolve_precision
from virnucpro.pipeline.report.gpu_monitor import GpuInfo
from virnucpro.pipeline.run.setup import gpu_auto_precision


def _gpu(ordinal: int, capability: tuple[int, int] | None) -> GpuInfo:
    return GpuInfo(ordinal, ordinal, "NVIDIA H100 80GB HBM3", f"GPU-{ordinal}", 80 << 30, capability)


def test_known_capabilities_decide_in_the_parent():
    assert gpu_auto_precision([_gpu(0, (9, 0)), _gpu(1, (8, 0))]) == "bf16"
    assert gpu_auto_precision([_gpu(0, (9, 0)), _gpu(1, (7, 0))]) == "fp32"
    assert gpu_auto_precision([_gpu(0, (7, 5)), _gpu(1, None)]) == "fp32"  # one known without BF16: all FP32


def test_an_unknown_capability_is_probed_in_the_worker_and_said_in_the_log(caplog: pytest.LogCaptureFixture):
    with caplog.at_level(logging.WARNING, logger="virnucpro.pipeline.run.setup"):
        assert gpu_auto_precision([_gpu(0, (9, 0)), _gpu(1, None)]) == "auto"
    assert "cuda:1" in caplog.text and "probes its own device" in caplog.text
    assert resolve_precision("auto", torch.device("cpu")) == torch.float32  # what a worker does off CUDA


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: the worker's probe reads the device")
def test_the_worker_probe_reads_the_device(caplog: pytest.LogCaptureFixture):
    with caplog.at_level(logging.INFO, logger="virnucpro.models.precision"):
        dtype = resolve_precision("auto", torch.device("cuda:0"))
    major, _ = torch.cuda.get_device_capability(0)
    assert dtype == (torch.bfloat16 if major >= 8 else torch.float32) and "compute capability" in caplog.text
