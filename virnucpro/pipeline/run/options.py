"""What ``virnucpro predict`` was asked to do, as one value (built by the CLI, read by every stage)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PredictOptions:
    """Everything ``virnucpro predict`` was asked to do (see its ``--help``)."""

    input_path: str
    output_dir: str
    model_type: int = 500
    model_path: str | None = None
    chunk_length: int | None = None
    esm_model: str | None = None
    dnabert_model: str | None = None
    dnabert_revision: str | None = None
    models: str = "published"
    device: str = "auto"
    precision: str = "auto"
    batch_tokens: int | None = None
    offline: bool = False
    shard_size: int | None = None  # None: auto (run.setup.resolve_shard_size)
    parallel: bool = False
    gpus: str | None = None
    workers: int = 0
    force: bool = False
    no_dashboard: bool = False
    keep_features: bool = False
    stall_timeout: float = 600.0
    discard_features: bool = False
    allow_chunk_length: bool = False
    min_score: float = 0.5
    min_length: int = 0
    region_gap: int = 1  # report-only, like min_score (report/regions.py)
    region_min_chunks: int = 2
    #: ``--compile``: ``auto`` | ``on`` | ``off`` (:mod:`virnucpro.models.fusion`); speed only, in no identity.
    compile: str = "auto"
    score_workers: int | None = None  # None = auto (score_pool.pool_size)

    @property
    def effective_chunk_length(self) -> int:
        """``--chunk-length``, or the model type (300 or 500) when not given."""
        return self.chunk_length or self.model_type
