"""What a ``predict`` run learns as it goes, and ``run_summary.json`` made from it."""

from __future__ import annotations

import json
import platform
from dataclasses import asdict, dataclass, field

from virnucpro import __version__
from virnucpro.errors import EXIT_OK
from virnucpro.pipeline.checkpoint import atomic_write_text
from virnucpro.pipeline.run_config import RunSetup
from virnucpro.pipeline.work_files import ShardInfo


@dataclass
class RunCounts:
    """Counts reported in the summary (the translate ones are also kept in the shard index)."""

    sequences: int = 0
    skipped_empty: int = 0
    bases: int = 0
    chunks: int = 0
    chunks_with_frames: int = 0
    kept_frames: int = 0
    frames_virus: int = 0
    chunks_virus: int = 0
    shards: int = 0


@dataclass
class StageReport:
    """Wall time and work of one stage (``reused``: shards whose verified results were kept;
    ``duplicate_frames``: computed frames that reused an identical frame's embedding)."""

    seconds: float = 0.0
    frames: int = 0
    computed_shards: int = 0
    reused_shards: int = 0
    duplicate_frames: int = 0

    @property
    def frames_per_second(self) -> float | None:
        return round(self.frames / self.seconds, 2) if self.seconds > 0 and self.frames else None


@dataclass
class RunState:
    """What a run learns as it goes; becomes ``run_summary.json``."""

    counts: RunCounts = field(default_factory=RunCounts)
    stages: dict[str, StageReport] = field(default_factory=dict)
    shards: list[ShardInfo] = field(default_factory=list)


def write_summary(
    setup: RunSetup,
    state: RunState,
    seconds: float,
    status: str = "ok",
    error: str | None = None,
    exit_code: int = EXIT_OK,
) -> None:
    """Write ``run_summary.json``: what batch scripts read instead of the log."""
    import numpy
    import torch

    options, paths, config, models = setup.options, setup.paths, setup.config, setup.models
    stages = {
        name: {**asdict(report), "frames_per_second": report.frames_per_second}
        for name, report in state.stages.items()
    }
    summary = {
        "status": status,
        "exit_code": exit_code,
        "error": error,
        "virnucpro_version": __version__,
        "input": str(options.input_path),
        "output_dir": str(paths.root.resolve()),
        "outputs": {
            "predictions": paths.predictions.name,
            "highest_score": paths.highest_score.name,
            "contig_summary": paths.contig_summary.name,
            "log": paths.log.name,
            "features": str(paths.features_dir) if options.keep_features else None,
        },
        "notice": models.notice if models.demo else None,
        "counts": asdict(state.counts),
        "stages": stages,
        "wall_seconds": round(seconds, 3),
        "devices": setup.plan.devices,
        "precision": config.precision,
        "chunk_length": config.chunk_length,
        "shard_size": config.shard_size,
        "models": config.models,
        "software": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "numpy": numpy.__version__,
            "platform": platform.platform(),
        },
    }
    atomic_write_text(paths.run_summary, json.dumps(summary, indent=1) + "\n")
