"""The two embedding models of a run, each described once.

A :class:`ModelKind` says everything the stages, the workers and
``features export`` need to know about one model: the name used in
identities, file names and task keys; which shard file it reads and which
feature file it writes; which model file it loads; the worker functions that
run it (in ``pipeline/parallel.py`` for DNABERT-S, ``pipeline/parallel_esm.py``
for ESM-2; the run's worker, ``pipeline/workers.py``, holds both and dispatches on
:attr:`EmbedPayload.model`). Each model's feature dimension is read once, by
``run.setup.resolve_models``, and recorded in the run's model identities
(``RunConfig.models[kind.name]["dim"]``).

:class:`EmbedInitArgs` and :class:`EmbedPayload` are what crosses the process
boundary to a worker (picklable dataclasses; spawn workers import this module).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from operator import attrgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from virnucpro.pipeline.checkpoint import read_done
from virnucpro.pipeline.outputs import RunPaths

if TYPE_CHECKING:
    from virnucpro.pipeline.run.setup import ResolvedModels


@dataclass(frozen=True)
class EmbedInitArgs:
    """Arguments of a worker's init function: the model file and how to run it.

    ``compile`` is the ``--compile`` mode (``auto`` | ``on`` | ``off``, see
    :mod:`virnucpro.models.fusion`); it changes speed, not what is computed, so it is in
    no identity. ``BatchQueueManager`` takes init arguments as a mapping, so they cross the
    process boundary as :meth:`as_mapping` and are rebuilt with :meth:`from_mapping`;
    the field names are the only spelling of the keys.
    """

    model_path: str
    precision: str
    batch_tokens: int | None
    compile: str = "auto"

    def as_mapping(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> EmbedInitArgs:
        return cls(**values)


@dataclass(frozen=True)
class EmbedPayload:
    """One embedding task: read ``source`` (shard FASTA), write ``target`` (feature file) + ``.done``.

    ``reuse``: the shard's reuse plan for this kind (frames not to embed, see
    :mod:`~virnucpro.pipeline.stages.reuse`). ``identity`` is what the resume check
    expects in the marker (see ``RunConfig.feature_identity``). ``model``: the
    :class:`ModelKind` name, on which the run's worker (:mod:`virnucpro.pipeline.workers`)
    dispatches the task.
    """

    source: str
    target: str
    identity: dict[str, Any]
    reuse: str | None = None
    model: str = ""


@dataclass(frozen=True)
class ModelKind:
    """One embedding model kind.

    Attributes:
        name: ``dnabert`` or ``esm``: key in the run's model identities, part of
            feature file names, stage and task names.
        label: the model's name for people.
        sequence: which sequence of a kept frame it embeds (``nucleotide`` or ``protein``,
            as ``translate.KeptFrame`` names them); frames are deduplicated on it.
        source: the shard file the model reads, ``source(paths, shard)``.
        features: the feature file it writes, ``features(paths, shard)``.
        model_file: the resolved model file or directory it loads.
        worker_init: ``module:function`` of the worker's init (loads the model on a device).
        worker_process: ``module:function`` embedding one shard (an :class:`EmbedPayload`).
        worker_prefetch: ``module:function`` reading and preparing a shard ahead of its turn
            (the work queue's ``prefetch_fn``).
    """

    name: str
    label: str
    sequence: str
    source: Callable[[RunPaths, int], Path]
    features: Callable[[RunPaths, int], Path]
    model_file: Callable[[ResolvedModels], Path]
    worker_init: str
    worker_process: str
    worker_prefetch: str | None = None

    def dim(self, identities: dict[str, Any]) -> int:
        """This model's feature dimension, from the run's model identities."""
        return int(identities[self.name]["dim"])

    def reuse(self, paths: RunPaths, shard: int) -> Path:
        """The reuse plan of this kind for ``shard``."""
        return paths.shard_reuse(self.name, shard)

    def inputs_sha256(self, paths: RunPaths, shard: int) -> dict[str, str | None]:
        """sha256 of the shard file this kind reads and of its reuse plan, as their ``.done``
        markers record them (None where unmarked): what a feature file is made from."""
        return {"source_sha256": (read_done(self.source(paths, shard)) or {}).get("sha256"),
                "reuse_sha256": (read_done(self.reuse(paths, shard)) or {}).get("sha256")}

    def init_args(self, models: ResolvedModels, precision: str, batch_tokens: int | None,
                  compile: str = "auto") -> EmbedInitArgs:
        """What every worker of this kind is started with (``compile``: the ``--compile`` mode)."""
        return EmbedInitArgs(str(self.model_file(models)), precision, batch_tokens, compile)


DNABERT_S = ModelKind(
    name="dnabert",
    label="DNABERT-S",
    sequence="nucleotide",
    source=RunPaths.shard_dna,
    features=RunPaths.dnabert_features,
    model_file=attrgetter("dnabert_dir"),
    worker_init="virnucpro.pipeline.parallel:init_dnabert_worker",
    worker_process="virnucpro.pipeline.parallel:embed_dnabert_shard",
    worker_prefetch="virnucpro.pipeline.parallel:prefetch_dnabert_shard",
)

ESM2 = ModelKind(
    name="esm",
    label="ESM-2",
    sequence="protein",
    source=RunPaths.shard_protein,
    features=RunPaths.esm_features,
    model_file=attrgetter("esm_path"),
    worker_init="virnucpro.pipeline.parallel_esm:init_esm_worker",
    worker_process="virnucpro.pipeline.parallel_esm:embed_esm_shard",
    worker_prefetch="virnucpro.pipeline.parallel_esm:prefetch_esm_shard",
)

#: Both kinds in the order their features are joined for the classifier (DNABERT-S, then ESM-2).
MODEL_KINDS: tuple[ModelKind, ...] = (DNABERT_S, ESM2)


def model_kind(name: str) -> ModelKind:
    """The kind called ``name`` (``dnabert`` or ``esm``).

    Raises:
        ValueError: no such kind.
    """
    for kind in MODEL_KINDS:
        if kind.name == name:
            return kind
    raise ValueError(f"unknown model {name!r}")
