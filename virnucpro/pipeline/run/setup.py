"""Before any work: which model files, which devices, which precision, which shard size and
which tail split.

Everything here runs in the parent process. It never initialises CUDA when
workers will be spawned (GPUs are discovered through NVML); only the
single-device, in-process mode asks torch about the device, because there the
parent is the worker.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from virnucpro.errors import DeviceSelectionError, ModelNotAvailableError
from virnucpro.hashing import cached_sha256
from virnucpro.models import registry
from virnucpro.pipeline.run.options import PredictOptions

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ResolvedModels:
    """The three model files of a run and their identities (name + sha256)."""

    esm_path: Path
    dnabert_dir: Path
    classifier_path: Path
    identities: dict[str, Any]
    demo: bool = False
    notice: str = ""


@dataclass(frozen=True)
class DevicePlan:
    """Where the embedding workers run.

    Attributes:
        devices: one entry per worker (``cuda:N`` or ``cpu``).
        in_process: run the single worker inside this process (no spawn).
        precision: precision name (``fp32``, ``bf16``, ``fp16``) used by every worker; ``auto`` only
            for GPU workers whose compute capability NVML could not tell (each worker then probes
            its own device: :func:`gpu_auto_precision`).
    """

    devices: list[str]
    in_process: bool
    precision: str


# --------------------------------------------------------------------------- models


def resolve_models(options: PredictOptions, *, with_classifier: bool = True) -> ResolvedModels:
    """Find (or fetch) the model files and check that they fit together.

    Args:
        with_classifier: False for the embedders only (``virnucpro train``): the
            classifier is neither resolved nor named in the identities.

    Raises:
        ModelNotAvailableError: a model is missing, unsafe, the classifier's input
            size is not DNABERT-S dim + ESM-2 dim, or a trained classifier's
            ``model.json`` names other feature models or another chunk length.
    """
    from virnucpro.models.classifier import (
        check_input_dim,
        check_model_card,
        classifier_file,
        load_classifier,
    )

    classifier_path = Path()
    if options.models == "demo":
        from virnucpro.models.demo import DemoModelSet, ensure_demo_models

        if options.esm_model or options.dnabert_model:
            raise DeviceSelectionError("--models demo cannot be combined with --esm-model or --dnabert-model")
        demo = ensure_demo_models()
        esm_path, dnabert_dir = demo.esm_path, demo.dnabert_dir
        # --model-path: a classifier trained on the demo embedders (``virnucpro train --models demo``).
        if with_classifier:
            classifier_path = classifier_file(options.model_path) if options.model_path else demo.classifier_path
        esm_name, dnabert_name = "demo-esm2", "demo-dnabert-s"
        classifier_name = options.model_path or "demo-classifier"
        notice = DemoModelSet.NOTICE
    else:
        esm_name = options.esm_model or registry.DEFAULT_ESM_MODEL
        dnabert_name = options.dnabert_model or registry.DEFAULT_DNABERT_MODEL
        classifier_name = options.model_path or f"{options.model_type}_model.pth"
        if with_classifier:
            model_file = classifier_file(options.model_path) if options.model_path else None
            classifier_path = registry.resolve_classifier(options.model_type, model_file, offline=options.offline)
        dnabert_dir = registry.resolve_dnabert_model(dnabert_name, options.dnabert_revision, offline=options.offline)
        esm_path = registry.resolve_esm_model(esm_name, offline=options.offline)
        notice = ""

    dnabert_dim = dnabert_hidden_size(dnabert_dir)
    esm_dim = esm_embed_dim(esm_path)
    identities: dict[str, dict[str, Any]] = {
        "dnabert": {"name": dnabert_name, "revision": options.dnabert_revision, "sha256": dnabert_fingerprint(dnabert_dir), "dim": dnabert_dim},
        "esm": {"name": esm_name, "sha256": cached_sha256(esm_path), "dim": esm_dim},
    }
    located = [("esm", esm_path), ("dnabert", dnabert_dir)]
    if with_classifier:
        check_model_card(classifier_path, dict(identities), options.effective_chunk_length)
        classifier = load_classifier(classifier_path)
        check_input_dim(classifier, dnabert_dim, esm_dim, dnabert_name=dnabert_name, esm_name=esm_name,
                        classifier_name=str(classifier_name))
        identities["classifier"] = {"name": str(classifier_name), "sha256": cached_sha256(classifier_path),
                                    "git_blob_sha1": registry.git_blob_sha1(classifier_path)}
        located.append(("classifier", classifier_path))
    for kind, path in located:
        logger.info("%s model: %s (%s)", kind, identities[kind]["name"], path)
    return ResolvedModels(esm_path, dnabert_dir, classifier_path, identities, options.models == "demo", notice)


def dnabert_hidden_size(model_dir: Path) -> int:
    """``hidden_size`` from a DNABERT-S directory's ``config.json``."""
    config = model_dir / "config.json"
    try:
        return int(json.loads(config.read_text(encoding="utf-8"))["hidden_size"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelNotAvailableError(f"{config}: cannot read hidden_size ({exc})") from None


def esm_embed_dim(path: Path) -> int:
    """Embedding size of an ESM-2 checkpoint (memory-mapped: the weights are not read)."""
    from virnucpro.models.esm2_checkpoint import load_esm2_checkpoint

    return load_esm2_checkpoint(path).embed_dim


def dnabert_fingerprint(model_dir: Path) -> str:
    """One sha256 over the files that decide DNABERT-S's numbers (config, tokenizer, weights)."""
    import hashlib

    digest = hashlib.sha256()
    for name in ("config.json", "tokenizer.json", *registry.DNABERT_WEIGHT_FILES):
        path = model_dir / name
        if path.is_file():
            digest.update(f"{name}:{cached_sha256(path)}\n".encode())
    return digest.hexdigest()


# --------------------------------------------------------------------------- devices


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, which SLURM and taskset narrow)."""
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def gpu_auto_precision(chosen: list) -> str:
    """``--precision auto`` for GPU workers on the devices ``chosen`` (``GpuInfo``s from NVML).

    BF16 when every one reports compute capability >= 8.0; FP32 when one reports less. When
    NVML cannot tell the capability of some (MIG, vGPU and some containers), the answer is
    ``auto``, passed on to the workers: each probes its own device with CUDA
    (:func:`virnucpro.models.precision.resolve_precision`, which logs the choice) instead of
    the parent falling back to FP32, about 10x slower, in silence.
    """
    known = [g for g in chosen if g.compute_capability is not None]
    if known and not all(g.supports_bf16 for g in known):
        return "fp32"
    if chosen and len(known) == len(chosen):
        return "bf16"
    unknown = ", ".join(f"cuda:{g.ordinal} ({g.name})" for g in chosen if g.compute_capability is None)
    logger.warning("--precision auto: NVML does not report the compute capability of %s; each GPU worker "
                   "probes its own device and uses BF16 on compute capability >= 8.0, else FP32",
                   unknown or "the GPUs")
    return "auto"


def plan_devices(options: PredictOptions) -> DevicePlan:
    """Turn ``--device/--parallel/--gpus/--workers/--precision`` into a worker plan.

    Raises:
        DeviceSelectionError / GpuSelectionError: contradictory options or absent devices (exit 2).
    """
    precision = options.precision.lower()
    if options.gpus is not None or options.parallel:
        from virnucpro.pipeline.report.gpu_monitor import parse_gpu_list, visible_gpus

        if options.workers:
            raise DeviceSelectionError("--workers runs CPU workers; it cannot be combined with --parallel/--gpus")
        if options.device not in ("auto", "cuda") and not options.device.startswith("cuda"):
            raise DeviceSelectionError(f"--device {options.device} contradicts --parallel/--gpus (GPU workers)")
        gpus = visible_gpus()
        ordinals = parse_gpu_list(options.gpus or "all", gpus)
        if precision == "auto":
            precision = gpu_auto_precision([g for g in gpus if g.ordinal in ordinals])
        return DevicePlan([f"cuda:{i}" for i in ordinals], in_process=False, precision=precision)

    if options.workers:
        if options.device not in ("auto", "cpu"):
            raise DeviceSelectionError("--workers runs CPU worker processes; use --gpus for GPU workers")
        cores = available_cores()
        if options.workers > cores:
            logger.warning("--workers %d is more than the %d CPU core(s) available: the workers share them "
                           "(one thread each) and each holds its own copy of the models", options.workers, cores)
        return DevicePlan(["cpu"] * options.workers, in_process=False,
                          precision="fp32" if precision == "auto" else precision)

    from virnucpro.models.precision import precision_name, resolve_device, resolve_precision

    try:
        device = resolve_device(options.device)
        dtype = resolve_precision(precision, device)
    except ValueError as exc:
        raise DeviceSelectionError(str(exc)) from None
    return DevicePlan([str(device)], in_process=True, precision=precision_name(dtype))


# --------------------------------------------------------------------------- shard size

#: ``--shard-size auto`` bounds: the largest shard (also the size when the work is unknown, e.g.
#: a stream) and the smallest (below it, per-shard costs such as reading, writing and
#: checksumming outweigh what the balance gains).
AUTO_SHARD_MAX = 10_000
AUTO_SHARD_MIN = 1_000
#: Shards per worker ``auto`` aims at: the last shards then leave a worker idle for at most
#: about a quarter of its share of the work.
SHARDS_PER_WORKER = 4


def auto_shard_size(estimated_frames: int | None, workers: int) -> int:
    """Frames per shard for about :data:`SHARDS_PER_WORKER` shards per worker, rounded up to
    a multiple of 100, within [:data:`AUTO_SHARD_MIN`, :data:`AUTO_SHARD_MAX`]."""
    if estimated_frames is None:
        return AUTO_SHARD_MAX
    per_shard = -(-max(0, estimated_frames) // (max(1, workers) * SHARDS_PER_WORKER))
    return min(AUTO_SHARD_MAX, max(AUTO_SHARD_MIN, -(-per_shard // 100) * 100))


def resolve_shard_size(options: PredictOptions, recorded: int | None, chunks: int | None,
                       plan: DevicePlan) -> int:
    """The run's shard size: ``--shard-size`` when given; for ``auto``, the size an earlier run
    in the directory recorded (so resuming on other devices reuses every shard), else sized to
    the work (about one kept frame per chunk) and the number of workers."""
    if options.shard_size is not None:
        return options.shard_size
    if recorded is not None and not options.force:
        logger.debug("shard size: %d frames, as the earlier run in this directory chose", recorded)
        return recorded
    size = auto_shard_size(chunks, len(plan.devices))
    logger.info("shard size: %d frames (auto: %s chunk(s), %d worker(s))", size,
                "unknown" if chunks is None else chunks, len(plan.devices))
    return size


# --------------------------------------------------------------------------- tail split

#: Tail shards are cut to the remaining work over ``TAIL_FACTOR x workers`` (guided
#: self-scheduling with factor 2: each worker's share of what is left, halved).
TAIL_FACTOR = 2


@dataclass(frozen=True)
class TailPlan:
    """How translate cuts the last shards of a run on several workers, so that they end together.

    Recorded in ``run.json`` (``params.tail``) and in the translate identity: a resume re-cuts
    exactly the same shards whatever its devices. Absent (None) means no tail split: every
    shard but a group's last holds ``shard_size`` frames.

    Attributes:
        workers: the devices the run was planned on (P > 1).
        min_frames: the smallest tail shard, about one ESM-2 batch (:func:`tail_min_frames`).
        chunks: the input's chunk count at the run's chunk length (the input check's), from
            which translate estimates the frames still to come.
    """

    workers: int
    min_frames: int
    chunks: int

    def as_params(self) -> dict[str, int]:
        """The plan as ``run.json`` and the translate identity record it."""
        return {"workers": self.workers, "min_frames": self.min_frames, "chunks": self.chunks}

    @classmethod
    def from_params(cls, value: Any) -> TailPlan | None:
        """The plan :meth:`as_params` recorded; None for an absent or unreadable one (no tail split)."""
        if not isinstance(value, dict):
            return None
        try:
            plan = cls(int(value["workers"]), int(value["min_frames"]), int(value["chunks"]))
        except (KeyError, TypeError, ValueError):
            return None
        return plan if plan.workers > 1 and plan.min_frames > 0 and plan.chunks >= 0 else None


def tail_shard_size(remaining: int, shard_size: int, tail: TailPlan | None) -> int:
    """Frames of the next shard when about ``remaining`` frames are left (this shard's included):
    ``clamp(ceil(remaining / (TAIL_FACTOR x workers)), min_frames, shard_size)``; ``shard_size``
    without a tail plan."""
    if tail is None:
        return shard_size
    share = -(-max(0, remaining) // (TAIL_FACTOR * tail.workers))
    return max(1, min(shard_size, max(tail.min_frames, share)))


def planned_shard_sizes(frames: int, shard_size: int, tail: TailPlan | None) -> list[int]:
    """The shards ``frames`` frames are cut into when the frames still to come are known exactly:
    :func:`tail_shard_size` of what is left, the last shard holding the remainder."""
    if tail is None:
        return [shard_size] * (frames // shard_size) + ([frames % shard_size] if frames % shard_size else [])
    sizes: list[int] = []
    left = frames
    full = max(0, (left - TAIL_FACTOR * tail.workers * shard_size) // shard_size)  # before the tail
    sizes.extend([shard_size] * full)
    left -= full * shard_size
    while left > 0:
        size = min(left, tail_shard_size(left, shard_size, tail))
        sizes.append(size)
        left -= size
    return sizes


def tail_min_frames(chunk_length: int, batch_tokens: int | None, devices: list[str]) -> int:
    """Frames of one ESM-2 batch of full chunks: the batch token budget over a frame's tokens
    (``chunk_length // 3`` residues plus BOS and EOS).

    The budget is ``--batch-tokens`` when given, else the embedder's default
    (:func:`virnucpro.models.esm2.default_batch_tokens`): :data:`~virnucpro.models.esm2.CPU_BATCH_TOKENS`
    on CPU; on a GPU it is sized from free memory in the worker, unknown here, so the largest
    it can be (:data:`~virnucpro.models.batching.MAX_BATCH_TOKENS`, what a GPU of 24 GB or more
    gives ESM-2 3B) stands in.
    """
    if batch_tokens is None:
        from virnucpro.models.batching import MAX_BATCH_TOKENS
        from virnucpro.models.esm2 import CPU_BATCH_TOKENS

        batch_tokens = MAX_BATCH_TOKENS if any(d.startswith("cuda") for d in devices) else CPU_BATCH_TOKENS
    return max(1, -(-batch_tokens // (chunk_length // 3 + 2)))


def resolve_tail_plan(options: PredictOptions, recorded: Mapping[str, Any] | None, chunks: int | None,
                      plan: DevicePlan, shard_size: int) -> TailPlan | None:
    """The run's tail split: the one an earlier run in the directory recorded (``recorded``: its
    ``run.json`` params; none recorded there means none, so an older run resumes as it was cut),
    else, when the input's chunk count is known (a file, not a stream), one for the workers the
    queue will start: the planned devices, but no more than the input fills shards of
    ``shard_size`` (about one kept frame per chunk; ``stages.embed`` starts no more), and only
    when that is more than one."""
    if recorded is not None and not options.force:
        return TailPlan.from_params(recorded.get("tail"))
    if chunks is None:
        return None
    workers = min(len(plan.devices), -(-chunks // shard_size))
    if workers < 2:
        return None
    tail = TailPlan(workers, tail_min_frames(options.effective_chunk_length, options.batch_tokens, plan.devices),
                    chunks)
    logger.info("tail split: the last shards shrink to the work left over %d x %d workers, down to %d frames",
                TAIL_FACTOR, tail.workers, tail.min_frames)
    return tail
