"""Labelled inputs -> the predict feature stages -> one feature matrix per label.

Every input gets its own predict-style work directory under the work dir,
named by the input's stem and a hash of its run parameters (input sha256,
chunk length, shard size, precision, embedder identities), and runs
``predict``'s own translate and feature stages there
(:func:`~virnucpro.pipeline.stages.translate.translate_stage`,
:func:`~virnucpro.pipeline.stages.embed.feature_stage` with
``BatchQueueManager`` workers and ``.done`` markers). So features are
computed exactly as ``predict`` computes them, an interrupted extraction
resumes, and a second training run on the same inputs embeds nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from virnucpro.errors import InputError
from virnucpro.pipeline.checkpoint import (
    check_or_write_run_json,
    clean_temporaries,
    hash_input,
    make_dir,
    output_dir_lock,
)
from virnucpro.pipeline.model_kinds import MODEL_KINDS
from virnucpro.pipeline.outputs import RunPaths
from virnucpro.pipeline.prediction import check_input
from virnucpro.pipeline.report.summary import RunState
from virnucpro.pipeline.run.config import RunConfig, RunSetup
from virnucpro.pipeline.run.options import PredictOptions
from virnucpro.pipeline.run.setup import (
    AUTO_SHARD_MAX,
    DevicePlan,
    ResolvedModels,
    plan_devices,
    resolve_models,
)
from virnucpro.pipeline.stages.embed import feature_stage
from virnucpro.pipeline.stages.feature_files import read_shard_sequences, shard_feature_matrix
from virnucpro.pipeline.stages.translate import translate_stage

__all__ = ["FeatureSource", "InputFeatures", "LabelledData", "LabelledInput", "extract_features"]

logger = logging.getLogger(__name__)

#: Class of each label name (the classifier's column order: 0 = others, 1 = virus).
POSITIVE, NEGATIVE = 1, 0


@dataclass(frozen=True)
class LabelledInput:
    """One ``--positive`` / ``--negative`` file."""

    path: str
    label: int


@dataclass
class InputFeatures:
    """The kept frames of one input and their features (DNABERT-S then ESM-2 columns)."""

    source: LabelledInput
    sha256: str
    frame_ids: list[str]
    features: np.ndarray  # float32 [frames, dim]
    work_dir: Path
    embedded_shards: int = 0
    reused_shards: int = 0
    frames_before_filter: int = 0


@dataclass
class LabelledData:
    """All inputs' frames stacked: what training and evaluation read."""

    inputs: list[InputFeatures]
    models: ResolvedModels
    plan: DevicePlan
    chunk_length: int
    features: np.ndarray = field(init=False)
    labels: np.ndarray = field(init=False)
    #: index into :attr:`inputs` of each row
    origin: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        dim = sum(kind.dim(self.models.identities) for kind in MODEL_KINDS)
        self.features = np.concatenate([i.features for i in self.inputs]) if self.inputs else np.zeros((0, dim), np.float32)
        self.labels = np.concatenate([np.full(len(i.frame_ids), i.source.label, np.int64) for i in self.inputs])
        self.origin = np.concatenate([np.full(len(i.frame_ids), n, np.int64) for n, i in enumerate(self.inputs)])

    @property
    def frame_ids(self) -> list[str]:
        return [fid for i in self.inputs for fid in i.frame_ids]

    def class_balance(self) -> dict[str, int]:
        """Frames per class (always reported)."""
        return {"virus": int((self.labels == POSITIVE).sum()), "others": int((self.labels == NEGATIVE).sum())}


@dataclass(frozen=True)
class FeatureSource:
    """How features are made: the predict options that matter (models, devices, chunk length)."""

    options: PredictOptions
    work_dir: Path
    genbank_cds: bool = False


def _run_params_key(params: dict[str, object]) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]


def _stem(path: str) -> str:
    name = Path(path).name
    for suffix in (".gz", ".bz2", ".xz", ".fa", ".fasta", ".fna", ".gb", ".gbk", ".genbank"):
        name = name.removesuffix(suffix)
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "input"


def check_labelled_inputs(inputs: list[LabelledInput]) -> None:
    """Both classes present, no input given twice, no stdin.

    Raises:
        InputError: one line naming what is wrong.
    """
    if not any(i.label == POSITIVE for i in inputs):
        raise InputError("no --positive input: training and evaluation need labelled viral sequences")
    if not any(i.label == NEGATIVE for i in inputs):
        raise InputError("no --negative input: training and evaluation need labelled non-viral sequences")
    seen: dict[str, int] = {}
    for item in inputs:
        if item.path == "-":
            raise InputError("labelled inputs must be files, not '-' (features are kept per input file)")
        resolved = str(Path(item.path).resolve())
        if resolved in seen:
            raise InputError(f"{item.path}: given twice (as --positive or --negative)")
        seen[resolved] = item.label


def extract_features(inputs: list[LabelledInput], source: FeatureSource) -> LabelledData:
    """Run the predict feature stages on every input (reusing verified work) and stack the frames.

    Raises:
        InputError: an input is unusable, or a class ends up with no kept frame.
        ModelNotAvailableError / DeviceSelectionError: as ``predict``.
    """
    check_labelled_inputs(inputs)
    base = source.options
    for item in inputs:
        if not source.genbank_cds:
            check_input(item.path)
        elif not Path(item.path).is_file():
            raise InputError(f"{item.path}: no such file")
    plan = plan_devices(base)
    models = resolve_models(base, with_classifier=False)
    logger.info("devices: %s; precision: %s", ", ".join(plan.devices), plan.precision)
    make_dir(source.work_dir)
    done = [_one_input(item, source, models, plan) for item in inputs]
    data = LabelledData(done, models, plan, base.effective_chunk_length)
    balance = data.class_balance()
    for name, count in balance.items():
        if count == 0:
            raise InputError(f"the {name} inputs give no kept frame (inputs too short, or every frame filtered out)")
    logger.info("class balance: %d virus frame(s), %d others frame(s) (%.1f%% virus)",
                balance["virus"], balance["others"], 100.0 * balance["virus"] / max(1, sum(balance.values())))
    return data


def _one_input(item: LabelledInput, source: FeatureSource, models: ResolvedModels, plan: DevicePlan) -> InputFeatures:
    base = source.options
    chunk_length = base.effective_chunk_length
    cds = None
    fasta_path = item.path
    if source.genbank_cds:
        from virnucpro.training.genbank import genbank_to_fasta

        converted = source.work_dir / "genbank"
        make_dir(converted)
        fasta_path = str(converted / f"{_stem(item.path)}-{str(hash_input(item.path))[:12]}.fa")
        cds = genbank_to_fasta(Path(item.path), Path(fasta_path), chunk_length)
    input_sha = hash_input(fasta_path)
    config = RunConfig(input_sha, chunk_length, base.shard_size or AUTO_SHARD_MAX, plan.precision,
                       models.identities)
    work = source.work_dir / f"{_stem(item.path)}-{_run_params_key(config.run_params())}"
    paths = RunPaths(work)
    make_dir(work)
    options = replace(base, input_path=fasta_path, output_dir=str(work), keep_features=True, force=False)
    with output_dir_lock(work):
        clean_temporaries(work)
        outcome = check_or_write_run_json(work, config.run_params(), force=False, state_names=paths.state_names())
        setup = RunSetup(options, paths, config, models, plan, outcome)
        state = RunState()
        logger.info("features of %s (%s): %s", item.path, "virus" if item.label == POSITIVE else "others", work)
        translate_stage(setup, state)
        for kind in MODEL_KINDS:
            feature_stage(kind, state.shards, setup, state)
        frame_ids: list[str] = []
        blocks: list[np.ndarray] = []
        total = 0
        for shard in state.shards:
            try:
                shard_ids, matrix = shard_feature_matrix(paths, shard.index)
            except ValueError as exc:
                raise InputError(f"{work}: {exc}; delete that directory to recompute it") from None
            total += len(shard_ids)
            if cds is not None:
                _, proteins = read_shard_sequences(paths.shard_protein(shard.index))
                keep = np.array([cds.keeps(fid, p) for fid, p in zip(shard_ids, proteins)], dtype=bool)
                matrix = matrix[keep]
                shard_ids = [fid for fid, k in zip(shard_ids, keep) if k]
            frame_ids.extend(shard_ids)
            blocks.append(matrix)
    dim = sum(kind.dim(models.identities) for kind in MODEL_KINDS)
    features = np.concatenate(blocks) if blocks else np.zeros((0, dim), np.float32)
    embedded = sum(state.stages[k.name].computed_shards for k in MODEL_KINDS)
    reused = sum(state.stages[k.name].reused_shards for k in MODEL_KINDS)
    if cds is not None:
        logger.info("%s: --genbank-cds kept %d of %d frame(s)", item.path, len(frame_ids), total)
    return InputFeatures(item, str(hash_input(item.path)), frame_ids, features.astype(np.float32, copy=False), work,
                         embedded, reused, total)
