"""GPU discovery without a GPU: parsing against given GPU lists, graceful absence of NVML."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from virnucpro.errors import EXIT_USAGE
from virnucpro.pipeline.report.gpu_monitor import (
    GpuInfo,
    GpuSelectionError,
    parse_gpu_list,
    sample,
    visible_gpus,
)

FOUR = [GpuInfo(i, i, "NVIDIA H100", f"GPU-{i}", 80 << 30) for i in range(4)]


def test_parse_gpu_list_valid() -> None:
    assert parse_gpu_list("0,1,2,3", FOUR) == [0, 1, 2, 3]
    assert parse_gpu_list(" 2, 0 ", FOUR) == [2, 0]
    assert parse_gpu_list("all", FOUR) == [0, 1, 2, 3]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "empty"),
        ("0,a", "'a' is not a GPU number"),
        ("0,-1", "'-1' is not a GPU number"),
        ("1.5", "'1.5' is not a GPU number"),
        ("0,1,0", "GPU 0 is listed twice"),
        ("4", "GPU 4 does not exist; 4 visible: 0, 1, 2, 3"),
    ],
)
def test_parse_gpu_list_errors_are_one_line(spec: str, message: str) -> None:
    with pytest.raises(GpuSelectionError, match=message) as info:
        parse_gpu_list(spec, FOUR)
    assert "\n" not in str(info.value) and info.value.exit_code == EXIT_USAGE


def test_no_cuda_at_all() -> None:
    with pytest.raises(GpuSelectionError, match="no CUDA GPU is visible"):
        parse_gpu_list("0", [])


def test_without_nvml_nothing_raises_and_nothing_is_printed() -> None:
    # Run in a fresh interpreter so nvitop's import-time logging set-up is exercised too.
    code = (
        "from virnucpro.pipeline.report import gpu_monitor as g\n"
        "gpus = g.visible_gpus()\n"
        "print(len(gpus), g.sample(0) is None if not gpus else 'gpu', g.sample(99))\n"
        "import sys; sys.modules.get('torch') and print('torch imported')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            cwd=Path(__file__).resolve().parents[2])
    assert result.returncode == 0, result.stderr
    if result.stdout.startswith("0 "):  # this machine has no NVML (the usual CI case)
        assert result.stdout.split() == ["0", "True", "None"]
        assert result.stderr == ""
    assert "torch imported" not in result.stdout


def test_visible_gpus_matches_sample() -> None:
    for gpu in visible_gpus():  # empty without a GPU; checks the real thing where there is one
        reading = sample(gpu.ordinal)
        assert reading is not None and reading.memory_total == gpu.memory_total
