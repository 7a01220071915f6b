"""GPU discovery and sampling through NVML (via nvitop), never creating a CUDA context here.

Everything in this module is safe to call in the parent process before workers
are spawned: NVML is a monitoring library, not CUDA. Ordinals are CUDA
ordinals as the user sees them, i.e. positions in ``CUDA_VISIBLE_DEVICES``
when it is set (nvitop resolves UUIDs and MIG names in a short-lived child
process, so this process stays CUDA-free). When NVML is missing (no driver,
as on CPU-only machines) :func:`visible_gpus` returns an empty list and
:func:`sample` returns None; nothing here raises for a failing query.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from virnucpro.errors import GpuSelectionError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GpuInfo:
    """A GPU visible to CUDA in this process.

    Attributes:
        ordinal: the CUDA ordinal (``cuda:<ordinal>``) after ``CUDA_VISIBLE_DEVICES``.
        nvml_index: the NVML (``nvidia-smi``) index; a pair for a MIG device.
        name: marketing name, e.g. ``"NVIDIA H100 80GB HBM3"``.
        uuid: the GPU (or MIG) UUID.
        memory_total: bytes of device memory.
        compute_capability: ``(major, minor)``, e.g. ``(9, 0)`` for an H100; None if unknown.
    """

    ordinal: int
    nvml_index: int | tuple[int, int]
    name: str
    uuid: str
    memory_total: int | None
    compute_capability: tuple[int, int] | None = None

    @property
    def supports_bf16(self) -> bool:
        """Ampere (8.0) or newer: fast BF16 matrix units."""
        return self.compute_capability is not None and self.compute_capability[0] >= 8


@dataclass(frozen=True)
class GpuSample:
    """One reading of a GPU; a field is None when the driver did not answer it."""

    utilization: int | None
    memory_used: int | None
    memory_total: int | None


def _quiet_nvitop() -> None:
    # nvitop logs a multi-line "FATAL ERROR" at CRITICAL when NVML is missing, which is normal on
    # CPU-only machines; its module sets its own level at import, so import it first, then silence it.
    import nvitop.api.libnvml

    nvitop.api.libnvml.LOGGER.setLevel(logging.CRITICAL + 1)


def _value(raw: Any) -> Any:
    """nvitop returns its ``NA`` sentinel (a str subclass) for unanswered queries; map it to None."""
    return None if raw is None or isinstance(raw, str) else raw


@functools.lru_cache(maxsize=1)
def _cuda_devices() -> tuple[Any, ...]:
    try:
        _quiet_nvitop()
        from nvitop import Device

        return tuple(Device.from_cuda_visible_devices())
    except Exception as exc:  # noqa: BLE001 - no NVML, no driver, broken install: no GPUs
        logger.debug("NVML unavailable, no GPUs will be listed: %s", exc)
        return ()


def visible_gpus() -> list[GpuInfo]:
    """The GPUs CUDA would show this process, in CUDA ordinal order (cached for the process)."""
    gpus = []
    for ordinal, device in enumerate(_cuda_devices()):
        try:
            capability = _value(device.cuda_compute_capability())
            gpus.append(GpuInfo(ordinal, device.index, str(device.name()), str(device.uuid()),
                                _value(device.memory_total()),
                                tuple(capability) if capability else None))
        except Exception as exc:  # noqa: BLE001
            logger.debug("cannot query GPU %d: %s", ordinal, exc)
    return gpus


def nvml_available() -> bool:
    """True when NVML answered and at least one GPU is visible."""
    return bool(_cuda_devices())


def sample(ordinal: int) -> GpuSample | None:
    """Utilisation and memory of GPU ``cuda:<ordinal>``; None if NVML cannot tell (never raises)."""
    devices = _cuda_devices()
    if not 0 <= ordinal < len(devices):
        return None
    device = devices[ordinal]
    try:
        return GpuSample(_value(device.gpu_utilization()), _value(device.memory_used()),
                         _value(device.memory_total()))
    except Exception as exc:  # noqa: BLE001 - monitoring must never break a run
        logger.debug("GPU %d sample failed: %s", ordinal, exc)
        return None


def parse_gpu_list(spec: str, gpus: Sequence[GpuInfo] | None = None) -> list[int]:
    """Parse a ``--gpus`` value such as ``"0,1,2,3"`` or ``"all"`` into CUDA ordinals.

    Args:
        spec: comma-separated CUDA ordinals, or ``all``.
        gpus: the GPUs to check against; :func:`visible_gpus` by default.

    Returns:
        The ordinals, in the order given.

    Raises:
        GpuSelectionError: a one-line message for an empty list, a non-integer,
            a duplicate, an ordinal that does not exist, or no GPU at all.
    """
    text = spec.strip()
    if not text:
        raise GpuSelectionError("--gpus is empty; give GPU numbers such as 0,1 or 'all'")
    ordinals: list[int] = []
    if text.lower() != "all":
        for item in (part.strip() for part in text.split(",")):
            if not item.isdigit():
                raise GpuSelectionError(f"--gpus: {item!r} is not a GPU number (expected e.g. 0,1,2,3)")
            ordinal = int(item)
            if ordinal in ordinals:
                raise GpuSelectionError(f"--gpus: GPU {ordinal} is listed twice")
            ordinals.append(ordinal)
    available = visible_gpus() if gpus is None else list(gpus)
    if not available:
        raise GpuSelectionError(
            "--parallel/--gpus asks for GPUs but no CUDA GPU is visible (no NVIDIA driver/NVML, or "
            "CUDA_VISIBLE_DEVICES hides them); use --workers N for CPU worker processes"
        )
    if text.lower() == "all":
        return [gpu.ordinal for gpu in available]
    known = {gpu.ordinal for gpu in available}
    for ordinal in ordinals:
        if ordinal not in known:
            raise GpuSelectionError(
                f"--gpus: GPU {ordinal} does not exist; {len(available)} visible: "
                f"{', '.join(str(o) for o in sorted(known))}"
            )
    return ordinals


def device_health(device: str) -> str | None:
    """Why the GPU of ``device`` (``cuda:N``) must not be given a worker again, or None.

    The work queue calls it in the parent before it restarts a worker (after a crash or a sticky
    device error) and reloads the models onto that GPU. Asked of NVML, so no CUDA context is made:
    a GPU that NVML cannot find or query any more (fallen off the bus, reset pending after an Xid
    error) is unhealthy. None when NVML is missing (nothing can be told; a CPU device never is).
    """
    if not device.startswith("cuda"):
        return None
    ordinal = int(device.split(":", 1)[1]) if ":" in device else 0
    devices = _cuda_devices()
    if not devices:
        return None
    if ordinal >= len(devices):
        return f"NVML no longer lists GPU {ordinal}"
    try:
        answers = (devices[ordinal].memory_total(), devices[ordinal].gpu_utilization())
        if all(_value(answer) is None for answer in answers):
            return f"NVML cannot query GPU {ordinal} (no memory or utilisation reading)"
    except Exception as exc:  # noqa: BLE001 - an NVML error here is the answer
        return f"NVML cannot query GPU {ordinal}: {exc}"
    return None
