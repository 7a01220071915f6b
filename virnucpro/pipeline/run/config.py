"""What decides whether finished work can be reused: one :class:`RunConfig` per run.

:class:`RunConfig` is built once, from the options and the resolved models and
device plan. ``run.json`` stores :meth:`RunConfig.run_params` (an earlier run
in the same directory is resumed only when they are equal), and every stage
takes the identity it writes into, and checks against, its ``.done`` markers
from here:

* translate: input, chunk length, shard size, work format, and the tail split when there is one;
* features, per model kind: that model's identity, the precision, and the
  sha256 of the shard file it read and of its reuse plan;
* scores: the classifier's identity and both feature identities.

``min_score``, ``min_length`` and the region settings are deliberately in no identity and not in
``run.json``: they choose what is reported from the kept scores, never how a
number is computed, so changing them on a finished run recomputes no embedding
(a lower ``min_length`` only adds shards for the newly included records, see
``work_files.ShardInfo``).

:class:`RunSetup` is the accepted run: options, paths, config, models and
device plan, handed to every stage.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from virnucpro.pipeline.model_kinds import MODEL_KINDS, ModelKind
from virnucpro.pipeline.outputs import RunPaths
from virnucpro.pipeline.run.options import PredictOptions
from virnucpro.pipeline.run.setup import DevicePlan, ResolvedModels, TailPlan

#: Bumped whenever the layout of work files changes, so old work is never reused.
WORK_FORMAT = 1


@dataclass(frozen=True)
class RunConfig:
    """Every value that changes a run's numbers.

    Attributes:
        input_sha256: sha256 of the input file; None for stdin (never resumable).
        chunk_length: chunk length in bases.
        shard_size: kept frames per shard.
        precision: ``fp32``, ``bf16`` or ``fp16`` (every worker uses it).
        models: identities of the models by kind name plus ``classifier``
            (name, sha256 and, for the embedders, ``dim``), as ``run.setup.resolve_models`` made them.
        work_format: :data:`WORK_FORMAT`.
        min_score: ``--min-score``, the sequence-call threshold (no identity).
        min_length: ``--min-length``, records shorter are not scored (no identity).
        region_gap, region_min_chunks: ``--region-gap``, ``--region-min-chunks`` (viral regions; no identity).
        tail: how translate cuts the last shards on several workers (``run.setup.TailPlan``); None:
            no tail split. Recorded in ``run.json`` and the translate identity only when set, so a
            run from before the tail split resumes with the very params and identities it wrote.
    """

    input_sha256: str | None
    chunk_length: int
    shard_size: int
    precision: str
    models: Mapping[str, Any]
    work_format: int = WORK_FORMAT
    min_score: float = 0.5
    min_length: int = 0
    region_gap: int = 1
    region_min_chunks: int = 2
    tail: TailPlan | None = None

    @classmethod
    def build(cls, options: PredictOptions, models: ResolvedModels, plan: DevicePlan,
              input_sha256: str | None, shard_size: int, tail: TailPlan | None = None) -> RunConfig:
        """The config of a run of ``options`` with these models on this device plan
        (``shard_size``: ``run.setup.resolve_shard_size``; ``tail``: ``run.setup.resolve_tail_plan``)."""
        return cls(input_sha256, options.effective_chunk_length, shard_size, plan.precision,
                   models.identities, min_score=options.min_score, min_length=options.min_length,
                   region_gap=options.region_gap, region_min_chunks=options.region_min_chunks, tail=tail)

    def run_params(self) -> dict[str, Any]:
        """What ``run.json`` records under ``params``."""
        return {
            "work_format": self.work_format,
            "input_sha256": self.input_sha256,
            "chunk_length": self.chunk_length,
            "shard_size": self.shard_size,
            "precision": self.precision,
            "models": self.models,
            **self._tail_params(),
        }

    def _tail_params(self) -> dict[str, Any]:
        return {} if self.tail is None else {"tail": self.tail.as_params()}

    @staticmethod
    def describe_differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
        """One short ``setting: old -> new`` per setting that differs between two
        :meth:`run_params` (as read from ``run.json``), for a one-line refusal.

        Settings are named as the options that set them; checksums are cut to 12 hex digits
        and shown only when the names agree (the file behind a name changed).
        """
        diffs: list[str] = []
        if old.get("input_sha256") != new.get("input_sha256"):
            diffs.append(f"input: another file or content (sha256 {_short(old.get('input_sha256'))} -> "
                         f"{_short(new.get('input_sha256'))})")
        for key, option in (("chunk_length", "--chunk-length"), ("shard_size", "--shard-size"),
                            ("precision", "--precision"), ("work_format", "work format")):
            if old.get(key) != new.get(key):
                diffs.append(f"{option}: {_text(old.get(key))} -> {_text(new.get(key))}")
        old_models, new_models = old.get("models") or {}, new.get("models") or {}
        for kind in sorted(set(old_models) | set(new_models)):
            before, after = old_models.get(kind) or {}, new_models.get(kind) or {}
            if before == after:
                continue
            if before.get("name") != after.get("name"):
                diffs.append(f"{kind} model: {_text(before.get('name'))} -> {_text(after.get('name'))}")
            elif before.get("revision") != after.get("revision"):
                diffs.append(f"{kind} model revision: {_text(before.get('revision'))} -> {_text(after.get('revision'))}")
            else:
                diffs.append(f"{kind} model file {_text(after.get('name'))} changed "
                             f"(sha256 {_short(before.get('sha256'))} -> {_short(after.get('sha256'))})")
        if old.get("tail") != new.get("tail"):
            diffs.append(f"tail split of the last shards: {_tail_text(old.get('tail'))} -> {_tail_text(new.get('tail'))}")
        known = {"input_sha256", "chunk_length", "shard_size", "precision", "work_format", "models", "tail"}
        for key in sorted((set(old) | set(new)) - known):
            if old.get(key) != new.get(key):
                diffs.append(f"{key}: {_text(old.get(key))} -> {_text(new.get(key))}")
        return diffs

    def translate_identity(self) -> dict[str, Any]:
        """Identity of the shard files and the shard index."""
        return {"input_sha256": self.input_sha256, "chunk_length": self.chunk_length,
                "shard_size": self.shard_size, "work_format": self.work_format, **self._tail_params()}

    def feature_identity(self, kind: ModelKind, inputs_sha256: Mapping[str, str | None]) -> dict[str, Any]:
        """Identity of one feature file of ``kind``, made from the shard files with these
        sha256 (``ModelKind.inputs_sha256``: the shard file it embeds and its reuse plan)."""
        return {"model": self.models[kind.name], "precision": self.precision, **inputs_sha256}

    def score_identity(self, inputs_sha256: Mapping[str, Mapping[str, str | None]]) -> dict[str, Any]:
        """Identity of one shard's score file; ``inputs_sha256`` holds each kind's
        ``ModelKind.inputs_sha256`` by kind name."""
        return {
            "classifier": self.models["classifier"],
            **{kind.name: self.feature_identity(kind, inputs_sha256[kind.name]) for kind in MODEL_KINDS},
        }


def _short(digest: Any) -> str:
    return "(none: stdin or stream)" if digest is None else f"{str(digest)[:12]}..."


def _tail_text(value: Any) -> str:
    if not isinstance(value, Mapping):
        return "none"
    return f"{value.get('workers')} workers, down to {value.get('min_frames')} frames"


def _text(value: Any) -> str:
    return "(none)" if value is None else str(value)


@dataclass(frozen=True)
class RunSetup:
    """An accepted run (``run.json`` written or matched): what every stage works from.

    Attributes:
        outcome: ``new``, ``resume`` or ``forced`` (from ``checkpoint.check_or_write_run_json``).
    """

    options: PredictOptions
    paths: RunPaths
    config: RunConfig
    models: ResolvedModels
    plan: DevicePlan
    outcome: str
