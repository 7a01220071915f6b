"""``virnucpro merge``: join the runs of the parts of one input into the tables of a single run.

A single run writes its per-frame and per-sequence tables in input order and
its per-chunk table sorted by ``Modified_ID`` (as strings). Parts are
contiguous in input order and never cut a record, so:

* ``prediction_results.txt`` is the parts' tables concatenated in part order
  (one header); ``contig_summary.tsv`` and ``chunk_scores.tsv`` too, each row
  re-derived at the merged report-only settings (:mod:`.recall`), and
  ``viral_contigs.fa`` the parts' virus sequences one part after another (all
  parts must have one, or none: a part run on a stream writes none);
* ``prediction_results_highestscore.csv`` is a k-way merge of the parts'
  sorted tables (a chunk never straddles two parts, so rows never combine;
  an ID seen in two parts is refused);
* ``viral_regions.{tsv,bed,gff3}`` are made from the merged ``chunk_scores.tsv``;
* ``run_summary.json`` sums the counts, recounts what depends on the settings,
  and lists every part's wall time and devices; ``virnucpro_mqc.json`` and
  ``virnucpro_generalstats_mqc.json`` are made from it, and ``NOTICE.txt`` when
  the parts were made by the demo models.

Parts may differ in the report-only settings (``--min-score``, ``--min-length``,
``--region-gap``, ``--region-min-chunks``) when merge is given the value to use
(``--min-length``: the highest part's by default); merge's own options
re-threshold a merged result without re-running a part, as ``predict`` does.

Everything streams (one open file and one row per part), so memory does not
grow with the input. The result files are written atomically.

The merged tables are exactly what a single run writes whenever each frame's
score does not depend on which other frames shared its model batch. On CPU in
FP32 that holds with ``--batch-tokens 1``; with larger batches a frame's
embedding can change in its last float32 bit with its batch neighbours (as it
does between two single runs with different ``--shard-size``), and the
scores' last printed digit may then differ from a single run's.

Refusals (one line each, naming the part): a run directory that is missing,
unfinished (no ``run_summary.json``) or failed (its status is not ``ok``); a
part run with other settings or models than the first part (``run.json``
parameters), or called at another report-only setting that merge was not
given; with ``--manifest``, a part whose input is not a part of that
manifest (sha256 of the input in ``run.json``) and a manifest part with
records but no run; the same part given twice. A refused or failed merge leaves
nothing new in the output directory (a directory it created is removed).
"""

from __future__ import annotations

import heapq
import io
import json
import logging
import os
import shutil
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from virnucpro import __version__
from virnucpro.cluster.split import Manifest, read_manifest
from virnucpro.errors import MergeError, OutputError, VirnucproError

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- adapter
# The one place that knows how a ``predict`` output directory is laid out and
# which of its files merge reads. When the pipeline's file owners change, only
# this section follows.

from virnucpro.cluster import recall as _recall  # noqa: E402
from virnucpro.log import add_log_file, remove_log_file  # noqa: E402
from virnucpro.pipeline.checkpoint import (  # noqa: E402
    atomic_write,
    atomic_write_text,
    output_dir_lock,
    read_run_json,
)
from virnucpro.pipeline.outputs import RUN_SUMMARY_NAME, RunPaths  # noqa: E402
from virnucpro.pipeline.report import per_sequence as _per_sequence  # noqa: E402
from virnucpro.pipeline.report import regions as _regions  # noqa: E402
from virnucpro.pipeline.report import results as _results  # noqa: E402
from virnucpro.pipeline.report.multiqc import write_multiqc  # noqa: E402

#: Keys of ``run.json`` ``params`` that may differ between parts (everything else must match):
#: ``--shard-size auto`` sizes each part's shards to its own work, and a part run on several
#: devices cuts its last shards smaller (``tail``, issue 26): neither changes a score beyond SPEC 9.
PER_PART_PARAMS = frozenset({"input_sha256", "shard_size", "tail"})


@dataclass(frozen=True)
class ConcatenatedTable:
    """A result table that is the parts' tables one after another, in part order."""

    name: str
    header: bytes  # b"" for a file without a header line (e.g. a FASTA file)
    required: bool = True  # False for a file a part may lack (an older run, or the feature is off)


#: Tables joined in part order (input-order tables and the viral FASTA).
CONCATENATED_TABLES: tuple[ConcatenatedTable, ...] = (
    ConcatenatedTable(RunPaths(Path(".")).predictions.name, _results.PREDICTIONS_HEADER.encode()),
    ConcatenatedTable(RunPaths(Path(".")).contig_summary.name, _per_sequence.CONTIG_SUMMARY_HEADER.encode()),
    ConcatenatedTable(RunPaths(Path(".")).chunk_scores.name, _per_sequence.CHUNK_SCORES_HEADER.encode()),
    ConcatenatedTable(RunPaths(Path(".")).viral_fasta.name, b"", required=False),
)
#: ``run_summary.json`` ``calls`` entries of the report-only settings (one value in the merged run).
SHARED_CALL_SETTINGS = ("min_score", "min_length", "region_gap", "region_min_chunks")
HIGHEST_SCORE_NAME = RunPaths(Path(".")).highest_score.name
HIGHEST_SCORE_HEADER = _results.HIGHEST_SCORE_HEADER.encode()


def _paths(run_dir: Path) -> RunPaths:
    return RunPaths(run_dir)


def _read_params(run_dir: Path) -> dict[str, Any] | None:
    """``run.json`` parameters of a part run, or None when it has none."""
    data = read_run_json(run_dir)
    return None if data is None else dict(data["params"])


def _is_running(run_dir: Path) -> bool:
    """True while a predict run holds the run directory's lock (its tables may be half rewritten)."""
    try:
        with output_dir_lock(run_dir):
            return False
    except VirnucproError:
        return True


def _read_summary(run_dir: Path) -> dict[str, Any] | None:
    path = _paths(run_dir).run_summary
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise MergeError(f"{run_dir}: cannot read {path.name} ({exc})") from None


# --------------------------------------------------------------------------- parts


@dataclass
class PartRun:
    """One run directory given to merge, checked."""

    run_dir: Path
    params: dict[str, Any]
    summary: dict[str, Any]

    @property
    def input_sha256(self) -> str | None:
        return self.params.get("input_sha256")


def _load_part(run_dir: Path) -> PartRun:
    """Read and check one run directory: it exists, is a predict run, and finished."""
    if not run_dir.is_dir():
        raise MergeError(f"{run_dir}: missing part (no such run directory)")
    params = _read_params(run_dir)
    if params is None:
        raise MergeError(f"{run_dir}: not a virnucpro predict run (no run.json); run predict on its part first")
    if _is_running(run_dir):
        raise MergeError(f"{run_dir}: part still running (a predict run holds its lock); merge when it has finished")
    summary = _read_summary(run_dir)
    if summary is None:
        raise MergeError(f"{run_dir}: unfinished part (no {RUN_SUMMARY_NAME}); re-run its predict command to finish it")
    status = summary.get("status")
    if status != "ok":
        error = summary.get("error") or "no error recorded"
        raise MergeError(f"{run_dir}: part {status or 'without status'} ({error}); re-run its predict command")
    for table in (*CONCATENATED_TABLES, ConcatenatedTable(HIGHEST_SCORE_NAME, HIGHEST_SCORE_HEADER)):
        if table.required and not (run_dir / table.name).is_file():
            raise MergeError(f"{run_dir}: unfinished part ({table.name} is missing); re-run its predict command")
    return PartRun(run_dir, params, summary)


def _settings_difference(first: PartRun, other: PartRun) -> str | None:
    """What differs between two parts' settings (``key: a vs b``), or None."""
    keys = sorted((set(first.params) | set(other.params)) - PER_PART_PARAMS)
    diffs = [
        f"{key}: {json.dumps(other.params.get(key))} vs {json.dumps(first.params.get(key))}"
        for key in keys if first.params.get(key) != other.params.get(key)
    ]
    return "; ".join(diffs) if diffs else None


def check_parts(run_dirs: Sequence[str | Path], manifest_path: str | Path | None = None) -> list[PartRun]:
    """Load and check every run directory; returns the parts in merge order.

    With a manifest the order is the manifest's and every part with records
    must be present; without one it is the order given.

    Raises:
        MergeError: one line naming the first part that is refused and why.
        InputError: the manifest cannot be read.
    """
    if not run_dirs:
        raise MergeError("no run directories given")
    parts: list[PartRun] = []
    seen_dirs: dict[Path, Path] = {}
    seen_inputs: dict[str, Path] = {}
    for given in run_dirs:
        run_dir = Path(given)
        resolved = run_dir.resolve()
        if resolved in seen_dirs:
            raise MergeError(f"{run_dir}: part given twice (also as {seen_dirs[resolved]})")
        seen_dirs[resolved] = run_dir
        part = _load_part(run_dir)
        sha = part.input_sha256
        if sha is not None and sha in seen_inputs:
            raise MergeError(f"{run_dir}: part given twice (same input as {seen_inputs[sha]})")
        if sha is not None:
            seen_inputs[sha] = run_dir
        if parts:
            diff = _settings_difference(parts[0], part)
            if diff:
                raise MergeError(f"{run_dir}: part run with other settings or models than {parts[0].run_dir} ({diff})")
        parts.append(part)
    optional = [t.name for t in CONCATENATED_TABLES if not t.required]
    for name in optional:
        having = [p.run_dir for p in parts if (p.run_dir / name).is_file()]
        if having and len(having) < len(parts):
            lacking = next(p.run_dir for p in parts if not (p.run_dir / name).is_file())
            raise MergeError(f"{lacking}: has no {name} but {having[0]} has (was it run on a stream?)")
    if manifest_path is None:
        return parts
    return _order_by_manifest(parts, read_manifest(manifest_path), Path(manifest_path))


def _order_by_manifest(parts: list[PartRun], manifest: Manifest, manifest_path: Path) -> list[PartRun]:
    """Match each run to its manifest part by the sha256 of its input; check that none is missing."""
    by_sha = {p.input_sha256: p for p in parts}
    files_by_sha = {info.sha256: info.file for info in manifest.parts if info.records}
    for part in parts:
        if part.input_sha256 not in files_by_sha:
            ran_on = Path(str(part.summary.get("input", "?"))).name
            raise MergeError(
                f"{part.run_dir}: its input ({ran_on}, sha256 {str(part.input_sha256)[:12]}...) does not match "
                f"any part of {manifest_path}"
            )
    ordered = []
    for info in manifest.parts:
        if not info.records:
            continue  # an empty part: nothing was predicted, nothing to merge
        match = by_sha.get(info.sha256)
        if match is None:
            raise MergeError(
                f"{info.file}: missing part (no run directory given for this part of {manifest_path}, "
                f"{info.records} record(s))"
            )
        ordered.append(match)
    return ordered


# --------------------------------------------------------------------------- merge



def _body_lines(path: Path, header: bytes, run_dir: Path) -> Iterator[bytes]:
    """Lines of a result table after its header (checked), as bytes."""
    with open(path, "rb") as handle:
        if header:
            first = handle.readline()
            if first != header:
                raise MergeError(f"{run_dir}: {path.name} does not start with the expected header")
        yield from handle


@dataclass
class _Recalled:
    """Each part's re-derivation (:mod:`.recall`), in part order, and the merged counts."""

    settings: _recall.CallSettings
    calls: list[_recall.PartCalls]
    tally: _recall.Tally


def _write_per_sequence(parts: Sequence[PartRun], out: Path, settings: _recall.CallSettings) -> _Recalled:
    """``contig_summary.tsv`` and ``chunk_scores.tsv`` of the merged run, each part's rows re-derived."""
    tally, calls = _recall.Tally(), []
    names = RunPaths(Path("."))

    def fill(summary_handle: IO[bytes]) -> None:
        def fill_chunks(chunks_handle: IO[bytes]) -> None:
            summary_text = io.TextIOWrapper(summary_handle, encoding="utf-8", newline="")
            chunks_text = io.TextIOWrapper(chunks_handle, encoding="utf-8", newline="")
            demo = bool(parts[0].summary.get("notice"))  # parts share their models
            summary_text.write(_per_sequence.table_header(_per_sequence.CONTIG_SUMMARY_HEADER, demo))
            chunks_text.write(_per_sequence.table_header(_per_sequence.CHUNK_SCORES_HEADER, demo))
            for part in parts:
                calls.append(_recall.recall_part(part.run_dir, part.run_dir / names.contig_summary.name,
                                                 part.run_dir / names.chunk_scores.name, settings,
                                                 summary_text, chunks_text, tally, demo))
            for text in (summary_text, chunks_text):
                text.flush()
                text.detach()
        atomic_write(out / names.chunk_scores.name, fill_chunks)

    atomic_write(out / names.contig_summary.name, fill)
    return _Recalled(settings, calls, tally)


def _write_predictions(parts: Sequence[PartRun], out: Path, recalled: _Recalled) -> int:
    """The parts' ``prediction_results.txt`` one after another, without the frames of sequences the
    merged ``--min-length`` excludes; counts the frames (and those labelled virus) in ``recalled``."""
    table = CONCATENATED_TABLES[0]
    tally = recalled.tally

    def write(handle: IO[bytes]) -> None:
        handle.write(table.header)
        for part, calls in zip(parts, recalled.calls):
            for line in _body_lines(part.run_dir / table.name, table.header, part.run_dir):
                frame, label = line.split(b"\t", 2)[:2]
                if calls.excluded and _recall.record_of_frame(frame) in calls.excluded:
                    continue
                handle.write(line)
                tally.frames_scored += 1
                tally.frames_virus += label == b"virus"

    atomic_write(out / table.name, write)
    return tally.frames_scored


def _write_viral_fasta(parts: Sequence[PartRun], out: Path, recalled: _Recalled) -> int | None:
    """The merged ``viral_contigs.fa`` (None when the parts have none: run on a stream); returns
    the records written.

    Raises:
        MergeError: a part's newly called virus sequences are neither in its viral FASTA nor in
            its input as it was (the input is gone or changed).
    """
    name = RunPaths(Path(".")).viral_fasta.name
    if not any((p.run_dir / name).is_file() for p in parts):
        return None
    settings = recalled.settings

    def write(handle: IO[bytes]) -> None:
        for part, calls in zip(parts, recalled.calls):
            fasta = part.run_dir / name
            own = _recall.CallSettings.of_summary(part.summary)
            if (own.min_score, own.min_length) == (settings.min_score, settings.min_length):
                for line in _body_lines(fasta, b"", part.run_dir):
                    handle.write(line)
                continue
            wanted = set(calls.virus_ids)
            if not wanted:
                continue
            if own.min_length == settings.min_length and settings.min_score >= own.min_score:
                copied = _recall.copy_viral_records(fasta, wanted, handle)  # a subset of the part's
                if copied == wanted:
                    continue
                raise MergeError(f"{part.run_dir}: {name} lacks sequences called virus at the part's settings")
            _viral_from_input(part, wanted, handle)

    atomic_write(out / name, write)
    return sum(len(c.virus_ids) for c in recalled.calls)


def _viral_from_input(part: PartRun, wanted: set[str], handle: IO[bytes]) -> None:
    """A part's virus sequences taken from its input, which must be the file the part ran on."""
    from virnucpro.pipeline.checkpoint import hash_input

    source = str(part.summary.get("input") or "")
    usable = bool(source) and source != "-" and Path(source).is_file()
    if not usable or hash_input(source) != part.input_sha256:
        why = "is not there" if not usable else "changed since the part ran"
        raise MergeError(
            f"{part.run_dir}: at the merged settings {len(wanted)} sequence(s) of this part are called virus "
            f"that its viral_contigs.fa lacks, and its input {source or '?'} {why}; run merge where the parts' "
            "inputs are, or with the parts' --min-score/--min-length"
        )
    _recall.write_viral_from_input(source, wanted, handle)


def _sorted_rows(part: PartRun, excluded: set[str]) -> Iterator[tuple[bytes, bytes, Path]]:
    """(Modified_ID, whole line, run dir) of a part's per-chunk table, without the chunks of the
    sequences in ``excluded``; checks that it is sorted."""
    previous = b""
    for line in _body_lines(part.run_dir / HIGHEST_SCORE_NAME, HIGHEST_SCORE_HEADER, part.run_dir):
        key = line.split(b"\t", 1)[0]
        # Python sorts str by code point; UTF-8 bytes sort the same way.
        if key < previous:
            raise MergeError(f"{part.run_dir}: {HIGHEST_SCORE_NAME} is not sorted by Modified_ID")
        previous = key
        if excluded and _recall.ids.record_of_chunk(key.decode("utf-8")) in excluded:
            continue
        yield key, line, part.run_dir


def _write_highest(parts: Sequence[PartRun], out: Path, recalled: _Recalled) -> int:
    """k-way merge of the per-chunk tables; returns the rows (rows called True go to the tally)."""
    rows = 0

    def write(handle: IO[bytes]) -> None:
        nonlocal rows
        handle.write(HIGHEST_SCORE_HEADER)
        last: tuple[bytes, Path] | None = None
        streams = (_sorted_rows(p, c.excluded) for p, c in zip(parts, recalled.calls))
        for key, line, run_dir in heapq.merge(*streams, key=lambda row: row[0]):
            if last is not None and key == last[0]:
                raise MergeError(
                    f"{run_dir}: chunk {key.decode('utf-8', 'replace')} is also in {last[1]} "
                    "(parts overlap: were they split from one input?)"
                )
            last = (key, run_dir)
            handle.write(line)
            rows += 1
            recalled.tally.published_virus_chunks += line.rstrip(b"\r\n").endswith(b"\tTrue")

    atomic_write(out / HIGHEST_SCORE_NAME, write)
    return rows


def _summed_counts(parts: Sequence[PartRun]) -> dict[str, int]:
    total: dict[str, int] = {}
    for part in parts:
        for key, value in (part.summary.get("counts") or {}).items():
            if isinstance(value, int):
                total[key] = total.get(key, 0) + value
    total.pop("chunks_virus", None)  # parts made before issue 29: the published count, now published_virus_chunks
    return total


def merge_runs(run_dirs: Sequence[str | Path], out_dir: str | Path, manifest_path: str | Path | None = None,
               settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """Check the part runs and write the merged result tables, summary and log into ``out_dir``.

    Args:
        run_dirs: the parts' ``predict`` output directories.
        out_dir: where the merged files go (created if missing).
        manifest_path: the split's ``manifest.json``; orders the parts and checks their inputs.
        settings: report-only settings to call the merged run at (``min_score``, ``min_length``,
            ``region_gap``, ``region_min_chunks``; a missing or None one: the parts' own).

    Returns:
        The merged run summary (also written as ``run_summary.json``).

    Raises:
        MergeError: a part is refused (one line naming it). Nothing new is left in ``out_dir``.
        InputError / OutputError: the manifest cannot be read / the output cannot be written.
    """
    out = Path(out_dir)
    parts = check_parts(run_dirs, manifest_path)  # before anything is created
    out_resolved = out.resolve()
    for part in parts:
        if part.run_dir.resolve() == out_resolved:
            raise MergeError(f"{part.run_dir}: the output directory cannot also be a part")
    chosen = _recall.merged_settings([(p.run_dir, _recall.CallSettings.of_summary(p.summary)) for p in parts],
                                     settings or {})
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create directory {out}: {exc.strerror or exc}") from None
    paths = _paths(out)
    log_existed = paths.log.exists()
    handler = add_log_file(paths.log)
    try:
        summary = _merge(run_dirs, parts, out, paths, manifest_path, chosen)
    except BaseException:
        remove_log_file(handler)
        if created:
            shutil.rmtree(out, ignore_errors=True)
        elif not log_existed:
            paths.log.unlink(missing_ok=True)
        raise
    remove_log_file(handler)
    return summary


def _merge(run_dirs: Sequence[str | Path], parts: list[PartRun], out: Path, paths: RunPaths,
           manifest_path: str | Path | None, settings: _recall.CallSettings) -> dict[str, Any]:
    began = time.monotonic()
    logger.info("virnucpro %s merge of %d run(s) -> %s", __version__, len(run_dirs), out)
    first = parts[0].summary if parts else {}
    notice = first.get("notice")
    if notice:
        logger.warning("*** %s ***", notice)
    # Every table is written into a staging directory first and moved into place only when
    # all of them are complete, so a refusal found while writing (overlapping parts) leaves
    # no new file behind, and an earlier merge's files stay whole.
    staging = out / f".merge-staging-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        recalled = _write_per_sequence(parts, staging, settings)
        frames = _write_predictions(parts, staging, recalled)
        chunk_rows = _write_highest(parts, staging, recalled)
        viral = _write_viral_fasta(parts, staging, recalled)
        if notice:
            atomic_write_text(staging / paths.notice.name, f"{notice}\n")
        for written in sorted(staging.iterdir()):
            os.replace(written, out / written.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if not notice:
        paths.notice.unlink(missing_ok=True)  # an earlier merge of demo parts in this directory
    names = RunPaths(Path("."))
    if viral is None:
        paths.viral_fasta.unlink(missing_ok=True)
    counts = _summed_counts(parts) | recalled.tally.counts()
    manifest = read_manifest(manifest_path) if manifest_path is not None else None
    calls = {key: getattr(settings, key) for key in SHARED_CALL_SETTINGS}
    summary: dict[str, Any] = {
        "status": "ok",
        "exit_code": 0,
        "error": None,
        "virnucpro_version": __version__,
        "merged_from": len(parts),
        "input": manifest.input if manifest else None,
        "input_sha256": manifest.input_sha256 if manifest else None,
        "manifest": str(Path(manifest_path).resolve()) if manifest_path is not None else None,
        "empty_parts": sum(1 for p in manifest.parts if not p.records) if manifest else 0,
        "output_dir": str(out.resolve()),
        "outputs": {names.predictions.name: frames,
                    names.contig_summary.name: counts.get("sequences", 0),
                    names.chunk_scores.name: None,
                    names.viral_fasta.name: viral,
                    HIGHEST_SCORE_NAME: chunk_rows},
        "notice": notice,
        "counts": counts,
        "calls": {
            "virus": counts["sequences_virus"],
            "not_virus": counts["sequences_not_virus"],
            "no_call": counts["sequences_no_call"],
            **calls,
        },
        "wall_seconds_parts_total": round(sum(float(p.summary.get("wall_seconds") or 0) for p in parts), 3),
        "wall_seconds_parts_max": round(max((float(p.summary.get("wall_seconds") or 0) for p in parts), default=0.0), 3),
        "merge_seconds": 0.0,
        "precision": first.get("precision"),
        "chunk_length": first.get("chunk_length"),
        "shard_size": _shared(p.summary.get("shard_size") for p in parts),
        "models": first.get("models"),
        "parts": [
            {
                "run_dir": str(p.run_dir.resolve()),
                "input": p.summary.get("input"),
                "input_sha256": p.input_sha256,
                "wall_seconds": p.summary.get("wall_seconds"),
                "devices": p.summary.get("devices"),
                "shard_size": p.summary.get("shard_size"),
                "calls": {key: (p.summary.get("calls") or {}).get(key) for key in SHARED_CALL_SETTINGS},
                "counts": p.summary.get("counts"),
            }
            for p in parts
        ],
    }
    summary["outputs"][names.chunk_scores.name] = _count_lines(paths.chunk_scores) - 1
    counts["viral_regions"] = _regions.write_regions(paths, settings.min_score, settings.region_gap,
                                                     settings.region_min_chunks, notice)
    summary["merge_seconds"] = round(time.monotonic() - began, 3)
    atomic_write_text(paths.run_summary, json.dumps(summary, indent=1) + "\n")
    write_multiqc(paths, summary)
    if notice:
        logger.warning("*** %s ***", notice)
    logger.info(
        "merge: %d part(s), %d sequences%s, %d chunks and %d kept frames scored, %d virus chunk(s) (chunk score "
        ">= --min-score %g) in %.1f s; results in %s",
        len(parts), counts.get("sequences", 0),
        f" ({counts['too_short']} below --min-length {settings.min_length}, not scored)" if settings.min_length else "",
        counts["chunks_scored"], frames, counts["virus_chunks"], settings.min_score, summary["merge_seconds"], out,
    )
    logger.info("%d of %d scored sequence(s) called virus at --min-score %g; viral sequences: %s",
                counts["sequences_virus"], counts["sequences_scored"], settings.min_score,
                paths.viral_fasta if viral is not None else "none (the parts have no viral FASTA)")
    return summary


def _count_lines(path: Path) -> int:
    with open(path, "rb") as handle:
        return sum(1 for _ in handle)


__all__ = ["CONCATENATED_TABLES", "MergeError", "PartRun", "check_parts", "merge_runs"]


def _shared(values: Iterable[Any]) -> Any:
    """The one value all parts share, or ``"per part"`` when they differ (see ``parts``)."""
    distinct = {json.dumps(v, sort_keys=True) for v in values}
    return json.loads(distinct.pop()) if len(distinct) == 1 else ("per part" if distinct else None)
