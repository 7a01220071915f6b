"""``virnucpro predict``: the stages in order, each resumable from files on disk.

::

    input.fa --translate--> work/shards/k.dna.fa + k.protein.faa   (same IDs, same order)
      k.dna.fa      --DNABERT-S workers--> work/features/k.dnabert.safetensors + .done
      k.protein.faa --ESM-2 workers------> work/features/k.esm.safetensors     + .done
      both          --join by ID, classify--> work/scores/k.tsv               + .done
      scores 1..n   --concatenate in order--> prediction_results.txt, ..._highestscore.csv,
                                              contig_summary.tsv, run_summary.json

A result is reused only when its ``.done`` marker verifies (size, sha256 and
the identity of the models, precision and inputs that made it), so re-running
the same command after a crash continues where it stopped.
"""

from __future__ import annotations

import itertools
import json
import logging
import platform
import shutil
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from virnucpro import __version__
from virnucpro.errors import InputError, OutputError, VirnucproError
from virnucpro.io.fasta import FastaWriter, read_fasta_bytes
from virnucpro.log import add_log_file, remove_log_file
from virnucpro.pipeline import results
from virnucpro.pipeline.checkpoint import (
    atomic_write,
    atomic_write_text,
    check_or_write_run_json,
    clean_temporaries,
    hash_input,
    read_done,
    verify_done,
    wipe_run_state,
    write_done,
)
from virnucpro.pipeline.dashboard import Dashboard
from virnucpro.pipeline.outputs import RunPaths, shard_name
from virnucpro.pipeline.run_setup import DevicePlan, ResolvedModels, plan_devices, resolve_models
from virnucpro.pipeline.work_queue import BatchQueueManager, Task

logger = logging.getLogger(__name__)

#: Bumped whenever the layout of work files changes, so old work is never reused.
WORK_FORMAT = 1


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
    shard_size: int = 10_000
    parallel: bool = False
    gpus: str | None = None
    workers: int = 0
    force: bool = False
    no_dashboard: bool = False
    keep_features: bool = False
    stall_timeout: float = 1800.0

    @property
    def effective_chunk_length(self) -> int:
        return self.chunk_length or self.model_type


@dataclass
class ShardInfo:
    """One shard of kept frames, as recorded in the translate index."""

    index: int
    frames: int


@dataclass
class RunCounts:
    """Counts reported in the summary."""

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
    """Wall time and work of one stage (``reused``: shards whose verified results were kept)."""

    seconds: float = 0.0
    frames: int = 0
    computed_shards: int = 0
    reused_shards: int = 0

    @property
    def frames_per_second(self) -> float | None:
        return round(self.frames / self.seconds, 2) if self.seconds > 0 and self.frames else None


@dataclass
class RunState:
    """What a run learns as it goes; becomes ``run_summary.json``."""

    counts: RunCounts = field(default_factory=RunCounts)
    stages: dict[str, StageReport] = field(default_factory=dict)
    shards: list[ShardInfo] = field(default_factory=list)


def main(options: PredictOptions) -> int:
    """Run a prediction (or resume one) and write the result tables.

    Returns:
        0 on success. Errors are raised as :class:`~virnucpro.errors.VirnucproError`.
    """
    paths = RunPaths(Path(options.output_dir))
    _make_dir(paths.root)
    log_handler = add_log_file(paths.log)
    try:
        from virnucpro.pipeline.checkpoint import output_dir_lock

        with output_dir_lock(paths.root):
            return _run(options, paths)
    except OutputError as exc:
        raise OutputError(f"{exc}; finished work is kept, re-run the same command once this is fixed") from exc
    finally:
        remove_log_file(log_handler)


def check_input(input_path: str) -> None:
    """Open the input and check its first bytes (raises :class:`InputError` at once when unusable)."""
    if input_path != "-":
        read_fasta_bytes(input_path).close()


def _make_dir(path: Path) -> None:
    """``mkdir -p`` whose failure (read-only filesystem, permission, a file in the way) is one line."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create directory {path}: {exc.strerror or exc}") from None


def _run(options: PredictOptions, paths: RunPaths) -> int:
    """Run every stage; a run that fails after it was accepted still leaves a ``run_summary.json``."""
    started = time.monotonic()
    state = RunState()
    setup: dict[str, Any] = {}
    try:
        return _run_stages(options, paths, state, setup, started)
    except BaseException as exc:
        if setup.get("accepted") and not isinstance(exc, InputError):
            status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
            exit_code = getattr(exc, "exit_code", 130 if status == "interrupted" else 1)
            try:
                _write_summary(options, paths, setup["models"], setup["plan"], state,
                               time.monotonic() - started, status=status, error=str(exc) or type(exc).__name__,
                               exit_code=exit_code)
            except Exception as summary_error:  # noqa: BLE001 - never mask the real error
                logger.debug("could not write the failure summary: %s", summary_error)
        raise


def _run_stages(options: PredictOptions, paths: RunPaths, state: RunState, setup: dict[str, Any],
                started: float) -> int:
    logger.info("virnucpro %s predict %s -> %s", __version__, options.input_path, paths.root)
    removed = clean_temporaries(paths.root)
    if removed:
        logger.info("removed %d temporary file(s) left by an interrupted run", len(removed))
    # Cheap checks first: a bad input or an absent GPU must not wait for a 6 GB model download.
    check_input(options.input_path)
    plan = plan_devices(options)
    logger.info("devices: %s; precision: %s", ", ".join(plan.devices), plan.precision)
    models = resolve_models(options)
    if models.demo:
        logger.warning("*** %s ***", models.notice)
    input_sha = hash_input(options.input_path)
    params = {
        "work_format": WORK_FORMAT,
        "input_sha256": input_sha,
        "chunk_length": options.effective_chunk_length,
        "shard_size": options.shard_size,
        "precision": plan.precision,
        "models": models.identities,
    }
    outcome = check_or_write_run_json(
        paths.root, params, force=options.force, state_names=[p.name for p in paths.state_paths()]
    )
    if outcome == "forced":
        logger.info("--force: removed the previous run's state in %s", paths.root)
    setup.update(accepted=True, models=models, plan=plan)

    translate_identity = {"input_sha256": input_sha, "chunk_length": options.effective_chunk_length,
                          "shard_size": options.shard_size, "work_format": WORK_FORMAT}
    try:
        _translate_stage(options, paths, translate_identity, state)
    except InputError:
        if outcome != "resume":  # nothing of this run is worth keeping; let a fixed input start afresh
            wipe_run_state(paths.root, [p.name for p in paths.state_paths()])
        raise

    pending = [s for s in state.shards if not verify_done(paths.shard_scores(s.index), _score_identity(paths, models, plan, s))]
    scored_before = len(state.shards) - len(pending)
    if scored_before:
        logger.info("%d of %d shard(s) already scored and verified; reusing them", scored_before, len(state.shards))
    # With --keep-features every shard needs its features, also shards scored by an earlier run.
    to_embed = state.shards if options.keep_features else pending
    _feature_stage("dnabert", to_embed, options, paths, models, plan, state)
    _feature_stage("esm", to_embed, options, paths, models, plan, state)
    _score_stage(pending, paths, models, plan, state, scored_before)
    _assemble(paths, state)
    _remove_intermediates(paths, options.keep_features)
    _write_summary(options, paths, models, plan, state, time.monotonic() - started)
    if models.demo:
        atomic_write_text(paths.root / "NOTICE.txt", f"{models.notice}\n")
        logger.warning("*** %s ***", models.notice)
    logger.info(
        "done: %d sequences, %d chunks, %d kept frames, %d chunk(s) called virus; results in %s",
        state.counts.sequences, state.counts.chunks, state.counts.kept_frames,
        state.counts.chunks_virus, paths.root,
    )
    return 0


# --------------------------------------------------------------------------- translate


def _translate_stage(options: PredictOptions, paths: RunPaths, identity: dict[str, Any], state: RunState) -> None:
    """Cut the input into shards of kept frames, or reuse verified shards from an earlier run."""
    from virnucpro.pipeline.translate import TranslateStats, iter_chunk_frames

    began = time.monotonic()
    report = state.stages["translate"] = StageReport()
    if verify_done(paths.translate_index, identity):
        index = json.loads(paths.translate_index.read_text(encoding="utf-8"))
        shards = [ShardInfo(**s) for s in index["shards"]]
        if all(_shard_files_ok(paths, s, identity) for s in shards):
            state.shards = shards
            state.counts = RunCounts(**index["counts"])
            report.reused_shards = len(shards)
            report.seconds = time.monotonic() - began
            logger.info("translate: reusing %d verified shard(s) (%d kept frames)", len(shards), state.counts.kept_frames)
            return

    _make_dir(paths.shards_dir)
    stats = TranslateStats()

    def translate_into_shards(contigs_table: IO[bytes]) -> None:
        # Contig rows are written as soon as a record's chunks have all passed, so memory
        # stays flat however many records the input holds.
        with_frames: dict[str, int] = {}

        def write_finished_contigs(current: str | None = None) -> None:
            while stats.contigs and stats.contigs[0].id != current:
                contig = stats.contigs.popleft()
                row = f"{contig.id}\t{contig.length}\t{contig.chunks}\t{with_frames.pop(contig.id, 0)}\n"
                contigs_table.write(row.encode("utf-8"))

        shard_frames: list[tuple[str, str, str]] = []
        for chunk in iter_chunk_frames(options.input_path, options.effective_chunk_length, stats):
            write_finished_contigs(chunk.record_id)
            if not chunk.frames:
                continue
            with_frames[chunk.record_id] = with_frames.get(chunk.record_id, 0) + 1
            for frame in chunk.frames:
                shard_frames.append((chunk.chunk_id + frame.suffix, frame.nucleotide, frame.protein))
                if len(shard_frames) == options.shard_size:
                    state.shards.append(_write_shard(paths, len(state.shards) + 1, shard_frames, identity))
                    shard_frames = []
        if shard_frames:
            state.shards.append(_write_shard(paths, len(state.shards) + 1, shard_frames, identity))
        write_finished_contigs()

    atomic_write(paths.contigs_table, translate_into_shards)
    state.counts = RunCounts(
        sequences=stats.records, skipped_empty=stats.skipped_empty, bases=stats.bases, chunks=stats.chunks,
        chunks_with_frames=stats.chunks_with_kept_frame, kept_frames=stats.kept_frames, shards=len(state.shards),
    )
    index = {"shards": [asdict(s) for s in state.shards], "counts": asdict(state.counts)}
    atomic_write_text(paths.translate_index, json.dumps(index, indent=1) + "\n")
    write_done(paths.translate_index, identity, frames=stats.kept_frames)
    report.frames = stats.kept_frames
    report.computed_shards = len(state.shards)
    report.seconds = time.monotonic() - began
    logger.info("translate: %s; %d shard(s)", stats.summary(), len(state.shards))


def _write_shard(paths: RunPaths, index: int, frames: list[tuple[str, str, str]], identity: dict[str, Any]) -> ShardInfo:
    """Write one shard's DNA and protein files, keeping an identical verified file from a killed run."""
    import hashlib
    import io

    for path, column in ((paths.shard_dna(index), 1), (paths.shard_protein(index), 2)):
        buffer = io.BytesIO()
        writer = FastaWriter(buffer)
        for frame in frames:
            writer.write(frame[0], frame[column])
        data = buffer.getvalue()
        marker = read_done(path)
        if marker and marker.get("sha256") == hashlib.sha256(data).hexdigest() and verify_done(path, identity):
            continue
        atomic_write(path, data)
        write_done(path, identity, frames=len(frames))
    return ShardInfo(index, len(frames))


def _shard_files_ok(paths: RunPaths, shard: ShardInfo, identity: dict[str, Any]) -> bool:
    return all(
        verify_done(p, identity) and (read_done(p) or {}).get("frames") == shard.frames
        for p in (paths.shard_dna(shard.index), paths.shard_protein(shard.index))
    )


# --------------------------------------------------------------------------- features


def _shard_source(paths: RunPaths, kind: str, shard: ShardInfo) -> Path:
    """The shard file a model reads: nucleotides for DNABERT-S, proteins for ESM-2."""
    return paths.shard_dna(shard.index) if kind == "dnabert" else paths.shard_protein(shard.index)


def _feature_identity(paths: RunPaths, models: ResolvedModels, plan: DevicePlan, kind: str, shard: ShardInfo) -> dict[str, Any]:
    marker = read_done(_shard_source(paths, kind, shard)) or {}
    return {"model": models.identities[kind], "precision": plan.precision, "source_sha256": marker.get("sha256")}


def _feature_path(paths: RunPaths, kind: str, shard: ShardInfo) -> Path:
    return paths.dnabert_features(shard.index) if kind == "dnabert" else paths.esm_features(shard.index)


_WORKERS = {
    "dnabert": ("virnucpro.pipeline.parallel:init_dnabert_worker", "virnucpro.pipeline.parallel:embed_dnabert_shard"),
    "esm": ("virnucpro.pipeline.parallel_esm:init_esm_worker", "virnucpro.pipeline.parallel_esm:embed_esm_shard"),
}


def _feature_stage(
    kind: str,
    shards: list[ShardInfo],
    options: PredictOptions,
    paths: RunPaths,
    models: ResolvedModels,
    plan: DevicePlan,
    state: RunState,
) -> None:
    """Embed every shard that lacks a verified feature file, on the planned devices."""
    began = time.monotonic()
    report = state.stages[kind] = StageReport()
    tasks = []
    for shard in shards:
        target = _feature_path(paths, kind, shard)
        identity = _feature_identity(paths, models, plan, kind, shard)
        if verify_done(target, identity):
            report.reused_shards += 1
            continue
        payload = {"input": str(_shard_source(paths, kind, shard)), "output": str(target), "identity": identity}
        tasks.append(Task(f"{shard_name(shard.index)}:{kind}", shard.frames, payload))
    if report.reused_shards:
        logger.info("%s: reusing %d verified shard(s)", kind, report.reused_shards)
    if not tasks:
        return
    _make_dir(paths.features_dir)
    init_args: dict[str, Any] = {"precision": plan.precision, "batch_tokens": options.batch_tokens}
    if kind == "dnabert":
        init_args["model_dir"] = str(models.dnabert_dir)
    else:
        init_args["model_path"] = str(models.esm_path)
    total = sum(t.size for t in tasks)
    init_fn, process_fn = _WORKERS[kind]
    logger.info("%s: embedding %d frame(s) in %d shard(s) on %s", kind, total, len(tasks), ", ".join(plan.devices))
    with Dashboard(kind, total, plan.devices, no_dashboard=options.no_dashboard) as dashboard:
        manager = BatchQueueManager(
            init_fn, process_fn, plan.devices, init_args,
            in_process=plan.in_process, on_event=dashboard.handle,
            worker_env={"PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True"},
            stall_timeout=options.stall_timeout or None,
        )
        run_report = manager.run(tasks)
    run_report.raise_for_failures(kind)
    report.frames = total
    report.computed_shards = len(tasks)
    report.seconds = time.monotonic() - began
    logger.info("%s: %d frame(s) in %.1f s", kind, total, report.seconds)


# --------------------------------------------------------------------------- scores


def _score_identity(paths: RunPaths, models: ResolvedModels, plan: DevicePlan, shard: ShardInfo) -> dict[str, Any]:
    return {
        "classifier": models.identities["classifier"],
        "dnabert": _feature_identity(paths, models, plan, "dnabert", shard),
        "esm": _feature_identity(paths, models, plan, "esm", shard),
    }


def _score_stage(
    shards: list[ShardInfo], paths: RunPaths, models: ResolvedModels, plan: DevicePlan, state: RunState, reused: int
) -> None:
    """Join both feature files of each shard BY FRAME ID and classify every frame."""
    from virnucpro.models.classifier import load_classifier
    from virnucpro.pipeline.features import join_by_id, read_features, read_shard_sequences

    began = time.monotonic()
    report = state.stages["score"] = StageReport(reused_shards=reused)
    if not shards:
        return
    import torch

    # Float64 makes each frame's score independent of which frames share its batch (float32
    # matmuls round differently per batch shape); see results.probabilities_from_logits for ties.
    classifier = load_classifier(models.classifier_path).double().eval()
    _make_dir(paths.scores_dir)
    for shard in shards:
        frame_ids, _ = read_shard_sequences(paths.shard_dna(shard.index))
        dnabert = read_features(paths.dnabert_features(shard.index))
        esm = read_features(paths.esm_features(shard.index))
        try:
            features = join_by_id(frame_ids, dnabert, esm)
        except ValueError as exc:
            raise VirnucproError(f"{shard_name(shard.index)}: {exc}; re-run to recompute it") from None
        with torch.inference_mode():
            logits = classifier(torch.from_numpy(features).double()).numpy()
        probabilities = results.probabilities_from_logits(logits)
        rows = results.frame_scores(frame_ids, probabilities)
        target = paths.shard_scores(shard.index)
        atomic_write_text(target, "".join(row.line() for row in rows))
        write_done(target, _score_identity(paths, models, plan, shard), frames=len(rows))
        report.frames += len(rows)
        report.computed_shards += 1
    report.seconds = time.monotonic() - began
    logger.info("score: %d frame(s) in %d shard(s)", report.frames, report.computed_shards)


# --------------------------------------------------------------------------- final tables


def _all_rows(paths: RunPaths, shards: list[ShardInfo]) -> Iterator[results.FrameScore]:
    return itertools.chain.from_iterable(results.read_score_file(paths.shard_scores(s.index)) for s in shards)


def _read_contigs(paths: RunPaths) -> Iterator[results.ContigRow]:
    with open(paths.contigs_table, encoding="utf-8") as handle:
        for line in handle:
            seq_id, length, chunks, with_frames = line.rstrip("\n").split("\t")
            yield results.ContigRow(seq_id, int(length), int(chunks), int(with_frames))


def _assemble(paths: RunPaths, state: RunState) -> None:
    """Write the three result tables from the shard score files, in input order, atomically."""
    began = time.monotonic()
    shards = state.shards

    frames_virus = 0

    def write_predictions(handle) -> None:
        nonlocal frames_virus
        handle.write(results.PREDICTIONS_HEADER.encode())
        for shard in shards:
            with open(paths.shard_scores(shard.index), "rb") as source:
                for line in source:
                    frames_virus += line.split(b"\t", 2)[1] == b"virus"
                    handle.write(line)

    atomic_write(paths.predictions, write_predictions)

    # Per-chunk calls: sorted per shard into temporary files, then k-way merged.
    sorted_dir = paths.work / "assembly"
    _make_dir(sorted_dir)
    sorted_files = []
    for shard in shards:
        calls = sorted(results.chunk_calls(results.read_score_file(paths.shard_scores(shard.index))), key=lambda c: c.chunk_id)
        target = sorted_dir / f"{shard_name(shard.index)}.chunks.tsv"
        atomic_write_text(target, "".join(f"{c.chunk_id}\t{c.max_others!r}\t{c.max_virus!r}\n" for c in calls))
        sorted_files.append(target)

    chunks_virus = 0

    def write_highest(handle) -> None:
        nonlocal chunks_virus
        import io

        text = io.TextIOWrapper(handle, encoding="utf-8", newline="")
        text.write(results.HIGHEST_SCORE_HEADER)
        merged = results.merge_sorted_chunk_calls(_read_sorted_calls(p) for p in sorted_files)
        _rows, chunks_virus = results.write_highest_score_rows(merged, text)
        text.flush()
        text.detach()

    atomic_write(paths.highest_score, write_highest)
    shutil.rmtree(sorted_dir, ignore_errors=True)

    def write_contigs(handle) -> None:
        handle.write(results.CONTIG_SUMMARY_HEADER.encode())
        calls = results.chunk_calls(_all_rows(paths, shards))
        for line in results.contig_summary_lines(_read_contigs(paths), calls):
            handle.write(line.encode("utf-8"))

    atomic_write(paths.contig_summary, write_contigs)
    state.counts.frames_virus = frames_virus
    state.counts.chunks_virus = chunks_virus
    state.stages["assemble"] = StageReport(seconds=time.monotonic() - began, frames=state.counts.kept_frames)


def _read_sorted_calls(path: Path) -> Iterable[results.ChunkCall]:
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            chunk_id, others, virus = line.rstrip("\n").split("\t")
            yield results.ChunkCall(chunk_id, float(others), float(virus))


def _remove_intermediates(paths: RunPaths, keep_features: bool) -> None:
    """After success, drop what is large and cheap to remake: the shard FASTA files (the
    translate stage re-creates them in seconds) and, unless kept, the feature files. The
    small score files stay, so re-running a finished command only re-translates."""
    shutil.rmtree(paths.shards_dir, ignore_errors=True)
    if not keep_features:
        shutil.rmtree(paths.features_dir, ignore_errors=True)


# --------------------------------------------------------------------------- summary


def _write_summary(
    options: PredictOptions,
    paths: RunPaths,
    models: ResolvedModels,
    plan: DevicePlan,
    state: RunState,
    seconds: float,
    status: str = "ok",
    error: str | None = None,
    exit_code: int = 0,
) -> None:
    """Write ``run_summary.json``: what batch scripts read instead of the log."""
    import numpy
    import torch

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
        "devices": plan.devices,
        "precision": plan.precision,
        "chunk_length": options.effective_chunk_length,
        "shard_size": options.shard_size,
        "models": models.identities,
        "software": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "numpy": numpy.__version__,
            "platform": platform.platform(),
        },
    }
    atomic_write_text(paths.run_summary, json.dumps(summary, indent=1) + "\n")
