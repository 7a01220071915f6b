"""Datasheet dense BF16 tensor-core peaks, the conventional MFU denominator, keyed by device name.

MFU is reported both ways (:mod:`virnucpro.benchmark.run`): against the datasheet
figure here, the one papers and vendors quote and the one the targets are judged
on, and against the BF16 matmul rate measured in the same run (an 8192^3 loop
reaches about 70-80% of the datasheet on an H100, so that MFU reads about 1.3x
higher). Figures are *dense* (without 2:4 sparsity; datasheets print the sparse
figure, twice as large, with a footnote) and BF16 with FP32 accumulation, which is
what our matmuls do. Only figures read from the vendor's datasheet are listed; any
other device is "datasheet peak unknown" and gets only the measured-peak MFU.

Sources (NVIDIA product datasheets; the sparse figure halved where only it is printed):

* H100 SXM5 989.4 (datasheet "1,979 TFLOPS*", * with sparsity); H100 PCIe 756 ("1,513*");
  H100 NVL 835.5 ("1,671*"): NVIDIA H100 Tensor Core GPU datasheet.
* H200 SXM 989.4 ("1,979*"), H200 NVL 835.5 ("1,671*"): NVIDIA H200 Tensor Core GPU datasheet.
* A100 40 GB and 80 GB, SXM4 and PCIe, 312 (dense "312 TFLOPS | 624 TFLOPS*"): NVIDIA A100 datasheet.
* L40S 362.05 ("362.05 | 733*"): NVIDIA L40S datasheet. L40 181.05 ("181.05 | 362.1*"): L40 datasheet.
* L4 121 ("242*"): NVIDIA L4 datasheet. A10 125 ("125 | 250*"): NVIDIA A10 datasheet.
* GeForce RTX 4090 165.2 (FP16/BF16 tensor with FP32 accumulate, dense; "330.3" with sparsity)
  and RTX 6000 Ada 364.2 (dense; "728.5" with sparsity): NVIDIA Ada Lovelace architecture
  whitepaper, appendix tables.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

UNKNOWN = "datasheet peak unknown"


@dataclass(frozen=True)
class DatasheetPeak:
    """One device's dense BF16 peak and where the figure comes from."""

    device: str
    tflops: float
    source: str


# (pattern on the CUDA device name, peak); the first match wins, so variants come before the plain name.
_TABLE: tuple[tuple[str, DatasheetPeak], ...] = (
    (r"H100.*NVL", DatasheetPeak("H100 NVL", 835.5, "NVIDIA H100 datasheet: 1,671 TFLOPS BF16 with sparsity")),
    (r"H100.*PCIe", DatasheetPeak("H100 PCIe", 756.0, "NVIDIA H100 datasheet: 1,513 TFLOPS BF16 with sparsity")),
    (r"H100", DatasheetPeak("H100 SXM", 989.4, "NVIDIA H100 datasheet: 1,979 TFLOPS BF16 with sparsity")),
    (r"H200.*NVL", DatasheetPeak("H200 NVL", 835.5, "NVIDIA H200 datasheet: 1,671 TFLOPS BF16 with sparsity")),
    (r"H200", DatasheetPeak("H200 SXM", 989.4, "NVIDIA H200 datasheet: 1,979 TFLOPS BF16 with sparsity")),
    (r"A100", DatasheetPeak("A100", 312.0, "NVIDIA A100 datasheet: 312 TFLOPS BF16 dense (40 and 80 GB)")),
    (r"L40S", DatasheetPeak("L40S", 362.05, "NVIDIA L40S datasheet: 362.05 TFLOPS BF16 dense")),
    (r"L40\b", DatasheetPeak("L40", 181.05, "NVIDIA L40 datasheet: 181.05 TFLOPS BF16 dense")),
    (r"L4\b", DatasheetPeak("L4", 121.0, "NVIDIA L4 datasheet: 242 TFLOPS BF16 with sparsity")),
    (r"A10\b", DatasheetPeak("A10", 125.0, "NVIDIA A10 datasheet: 125 TFLOPS BF16 dense")),
    (r"RTX 4090", DatasheetPeak("RTX 4090", 165.2, "Ada whitepaper: 165.2 TFLOPS BF16, FP32 accumulate, dense")),
    (r"RTX 6000 Ada", DatasheetPeak("RTX 6000 Ada", 364.2, "Ada whitepaper: 364.2 TFLOPS BF16, FP32 accumulate, "
                                                           "dense")),
)


def datasheet_peak(device_name: str | None) -> DatasheetPeak | None:
    """The datasheet dense BF16 peak of a CUDA device from its name (``torch.cuda.get_device_name``),
    or None for a device not in the table (the CPU included)."""
    if not device_name:
        return None
    return next((peak for pattern, peak in _TABLE if re.search(pattern, device_name)), None)


def device_row_name(device_name: str | None) -> str:
    """The short name a results row carries (``H100 SXM``, ``H200 SXM``...), else the name as given."""
    peak = datasheet_peak(device_name)
    return peak.device if peak is not None else (device_name or "unknown device")
