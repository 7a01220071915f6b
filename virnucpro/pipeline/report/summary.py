"""What a ``predict`` run learns as it goes, and ``run_summary.json`` made from it."""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from virnucpro import __version__
from virnucpro.errors import EXIT_OK
from virnucpro.io.fasta_open import STDIN
from virnucpro.pipeline.checkpoint import atomic_write_text
from virnucpro.pipeline.outputs import RunPaths
from virnucpro.pipeline.report.multiqc import remove_multiqc, write_multiqc
from virnucpro.pipeline.run.config import RunSetup
from virnucpro.pipeline.stages.work_files import ShardInfo


@dataclass
class RunCounts:
    """Counts reported in the summary (the translate ones are also kept in the shard index).

    ``frames_virus``, ``virus_chunks`` (chunk score >= --min-score, the one definition of a
    virus chunk, see :mod:`.per_sequence`) and ``published_virus_chunks`` (rows ``True`` in the
    published highest-score table, always at 0.5) are None (unknown) until the tables are
    assembled; so are ``chunks_scored`` (chunks of the sequences scored: not empty, not below
    ``--min-length``) and ``frames_scored``.
    ``<kind>_reused_frames``: kept frames whose embedding by that model is not computed but
    reused from an identical frame of the run (``pipeline/reuse.py``; named by
    ``stages.translate._reused_count``).
    """

    sequences: int = 0
    skipped_empty: int = 0
    bases: int = 0
    chunks: int = 0
    chunks_with_frames: int = 0
    kept_frames: int = 0
    frames_virus: int | None = None
    virus_chunks: int | None = None
    published_virus_chunks: int | None = None
    shards: int = 0
    frames_scored: int = 0
    chunks_scored: int = 0
    too_short: int = 0
    sequences_scored: int = 0
    sequences_virus: int = 0
    sequences_not_virus: int = 0
    sequences_no_call: int = 0
    dnabert_reused_frames: int = 0
    esm_reused_frames: int = 0


@dataclass
class StageReport:
    """Wall time and work of one stage (``reused``: shards whose verified results were kept;
    ``duplicate_frames``: computed frames that reused an identical frame's embedding;
    ``workers``: the score stage's pool processes, 0 = scored in the main process; None and
    left out of the summary for the other stages)."""

    seconds: float = 0.0
    frames: int = 0
    computed_shards: int = 0
    reused_shards: int = 0
    duplicate_frames: int = 0
    workers: int | None = None

    @property
    def frames_per_second(self) -> float | None:
        return round(self.frames / self.seconds, 2) if self.seconds > 0 and self.frames else None


@dataclass
class WorkerReport:
    """One embedding worker (one per device) over the run: ``workers`` of ``run_summary.json``.

    Times are seconds from the run's start: ``start_s`` when its (latest) process started,
    ``ready_s`` when that process had loaded and warmed up every model, ``last_task_end_s``
    when its last task finished, ``end_s`` when the queue stopped it. ``load_seconds``,
    ``warm_up_seconds``, ``compile_seconds`` and ``compiled`` are per model, as the worker
    reported them (``compiled``: the warm-up compiled that model's forward); ``busy_seconds``
    per model is device time (a task's call until its embeddings were on the host).
    """

    device: str
    start_s: float | None = None
    ready_s: float | None = None
    last_task_end_s: float | None = None
    end_s: float | None = None
    load_seconds: dict[str, float] = field(default_factory=dict)
    warm_up_seconds: dict[str, float] = field(default_factory=dict)
    compile_seconds: dict[str, float] = field(default_factory=dict)
    compiled: dict[str, bool] = field(default_factory=dict)
    busy_seconds: dict[str, float] = field(default_factory=dict)
    tasks_done: int = 0
    restarts: int = 0

    def started(self, now: float, init_seconds: float, info: dict) -> None:
        """Its process reported ready at ``now`` after ``init_seconds`` (``info``: its worker_info)."""
        self.start_s = round(now - init_seconds, 3)
        self.ready_s = now
        for name in ("load_seconds", "warm_up_seconds", "compile_seconds", "compiled"):
            value = info.get(name)
            if isinstance(value, dict):
                setattr(self, name, dict(value))

    def task_done(self, model: str, busy: float, now: float) -> None:
        """A task of ``model`` finished at ``now`` after ``busy`` seconds of device work."""
        self.busy_seconds[model] = round(self.busy_seconds.get(model, 0.0) + busy, 3)
        self.tasks_done += 1
        self.last_task_end_s = now

    def as_summary(self) -> dict:
        """The summary's entry, with ``busy_fraction``: device time over ready-to-end."""
        values = asdict(self)
        span = (self.end_s or 0.0) - (self.ready_s or 0.0)
        busy = sum(self.busy_seconds.values())
        values["busy_fraction"] = round(busy / span, 3) if self.ready_s is not None and span > 0 else None
        return values


@dataclass
class RunState:
    """What a run learns as it goes; becomes ``run_summary.json``."""

    counts: RunCounts = field(default_factory=RunCounts)
    stages: dict[str, StageReport] = field(default_factory=dict)
    shards: list[ShardInfo] = field(default_factory=list)
    viral_fasta: bool | None = None  # written (True), impossible for a stream input (False), not yet (None)
    #: Rows of viral_regions.tsv (None until written); reported under ``counts`` but kept out of
    #: RunCounts, whose fields the translate stage records in translate.json.
    viral_regions: int | None = None
    started: float = field(default_factory=time.monotonic)  # the run's start (time.monotonic)
    times: dict[str, dict[str, float]] = field(default_factory=dict)  # stage -> start_s/end_s
    workers: dict[int, WorkerReport] = field(default_factory=dict)  # embedding worker id -> its report

    def mark(self, stage: str, which: str) -> None:
        """Record that ``stage`` starts (``which="start"``) or ends (``"end"``) now, in seconds
        from the run's start: ``stages.<stage>.start_s`` / ``end_s`` of the summary
        (``"first_shard"``: an embedding stage's first shard began, ``first_shard_s``; kept once)."""
        times = self.times.setdefault(stage, {})
        if which == "first_shard" and "first_shard_s" in times:
            return
        times[f"{which}_s"] = round(time.monotonic() - self.started, 3)


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
        name: {**{key: value for key, value in asdict(report).items() if key != "workers" or value is not None},
               "frames_per_second": report.frames_per_second,
               "start_s": None, "end_s": None, **state.times.get(name, {})}
        for name, report in state.stages.items()
    }
    summary = {
        "status": status,
        "exit_code": exit_code,
        "error": error,
        "virnucpro_version": __version__,
        "input": _absolute_input(options.input_path),
        "output_dir": str(paths.root.resolve()),
        # Only files that exist now (an interrupted run has not written its tables yet).
        "outputs": {
            "predictions": _present(paths.predictions),
            "highest_score": _present(paths.highest_score),
            "contig_summary": _present(paths.contig_summary),
            "chunk_scores": _present(paths.chunk_scores),
            "viral_regions": [name for name in map(_present, (paths.regions_tsv, paths.regions_bed,
                                                              paths.regions_gff)) if name] or None,
            "viral_fasta": _present(paths.viral_fasta) if state.viral_fasta else None,
            "log": _present(paths.log),
            "features": str(paths.features_dir) if status == "ok" and _kept_features(paths) else None,
        },
        "notice": models.notice if models.demo else None,
        "counts": {**asdict(state.counts), "viral_regions": state.viral_regions},
        "calls": {
            "virus": state.counts.sequences_virus,
            "not_virus": state.counts.sequences_not_virus,
            "no_call": state.counts.sequences_no_call,
            "min_score": config.min_score,
            "min_length": config.min_length,
            "region_gap": config.region_gap,
            "region_min_chunks": config.region_min_chunks,
        },
        # Unix time of the run's start: the times under stages and workers are seconds from it
        # (so runs, or the samples of a many-sample run, can be laid on one time line).
        "start_time": round(time.time() - (time.monotonic() - state.started), 3),
        "stages": stages,
        "workers": [state.workers[i].as_summary() for i in sorted(state.workers)],
        "wall_seconds": round(seconds, 3),
        "devices": setup.plan.devices,
        "precision": config.precision,
        # The --compile mode asked for (speed only, so in no identity and not in run.json).
        "compile": options.compile,
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
    if status == "ok":
        write_multiqc(paths, summary)
    else:
        remove_multiqc(paths)


def _absolute_input(input_path: str) -> str:
    """The input as an absolute path, like ``output_dir`` (``-`` stays ``-``: standard input)."""
    return input_path if input_path == STDIN else str(Path(input_path).absolute())


def _present(path: Path) -> str | None:
    """The file's name inside the output directory when it exists, else None."""
    return path.name if path.is_file() else None


def _kept_features(paths: RunPaths) -> bool:
    return paths.features_dir.is_dir() and any(paths.features_dir.glob("*.safetensors"))
