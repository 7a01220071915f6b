"""Many samples on a cluster: each sample a one-input cluster run in ``DIR/<sample>/``, then DIR's tables.

``slurm submit A.fa B.fq.gz -o DIR`` (or ``--samples FILE``) and ``workflow snakemake
--input A.fa --input B.fq.gz --output DIR`` take their samples as ``predict`` does
(:func:`~virnucpro.pipeline.run.samples.sample_list`: the same names and refusals), and
lay each sample out as a one-input cluster run with ``-o DIR/<sample>`` would::

    DIR/
      samples_summary.tsv, run_summary.json, virnucpro.log   written last, by `merge --samples`
      slurm/ (slurm submit)                                  job scripts, logs, samples.tsv
      logs/  (Snakemake)                                     the summary job's log
      <sample>/                                              the merged tables of the sample
        parts/   part-0001.fa.gz ... manifest.json           its split
        runs/    part-0001/ ...                              one predict run per part
        logs/    (Snakemake)                                 one log per job of the sample

``virnucpro merge --samples FILE -o DIR`` (:func:`merge_samples`) ends the run: it merges
each sample's parts into ``DIR/<sample>/`` (a sample already merged from the same finished
parts is kept as it is), and writes ``DIR/samples_summary.tsv`` and ``DIR/run_summary.json``
with the writer ``predict`` uses (:func:`~virnucpro.pipeline.report.samples.write_samples_summary`),
so ``plot``, ``features export`` and MultiQC see the same many-sample DIR a many-sample
``predict`` writes. A sample that cannot be merged (its split or a part failed) is reported:
its folder gets ``FAILED.txt`` with the one-line reason, the other samples are merged, and
the command exits 7 (or with the samples' own code when every sample failed alike).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from virnucpro.errors import (
    EXIT_OK,
    EXIT_SAMPLES_FAILED,
    MergeError,
    SamplesFailedError,
    UsageError,
    VirnucproError,
)
from virnucpro.io.fasta_open import is_stream
from virnucpro.pipeline.checkpoint import atomic_write_text, make_dir, output_dir_lock
from virnucpro.pipeline.outputs import RunPaths
from virnucpro.pipeline.report.samples import (
    FAILED_NAME,
    SAMPLES_SUMMARY_NAME,
    SampleOutcome,
    is_many_sample_dir,
    read_sample_counts,
    refuse_many_sample_dir,
    write_samples_summary,
)
from virnucpro.pipeline.run.samples import Sample, sample_list

logger = logging.getLogger(__name__)

#: Folders a cluster run writes at ``DIR`` besides the samples: no sample may be named so.
CLUSTER_NAMES = frozenset({"slurm", "logs"})
#: The samples of a cluster run, ``sample<TAB>absolute path`` per line (read back by ``sample_list``).
SHEET_NAME = "samples.tsv"
PARTS_DIR = "parts"
RUNS_DIR = "runs"


def cluster_samples(inputs: Sequence[str], samples_file: str | None, command: str) -> list[Sample]:
    """The samples of a many-sample cluster command, checked before anything is written.

    Raises:
        UsageError: what ``predict`` refuses, a stream (a job cannot read it), or a sample
            named like a folder the cluster run writes at DIR.
        InputError: a missing input file.
    """
    samples = sample_list(list(inputs), samples_file)
    for sample in samples:
        if is_stream(sample.path):
            raise UsageError(f"{sample.path}: {command} needs input files (a cluster job cannot read a stream)")
        if sample.name in CLUSTER_NAMES:
            raise UsageError(f"{sample.name!r} cannot be a sample name (input {sample.path}): {command} writes "
                             f"{', '.join(sorted(CLUSTER_NAMES))} at the output directory; name it in a --samples file")
    return [Sample(s.name, str(Path(s.path).resolve())) for s in samples]


def check_output_dir(root: Path, many: bool, command: str) -> None:
    """Refuse to mix a one-input run and a many-sample run in one output directory."""
    if not many:
        refuse_many_sample_dir(root, command)
        return
    summary = RunPaths(root).run_summary
    if RunPaths(root).run_json.exists() or (summary.exists() and not is_many_sample_dir(root)):
        raise UsageError(f"{root} holds a one-input run; write a many-sample run to another directory")


def write_sample_sheet(samples: Sequence[Sample], path: Path) -> Path:
    """Write ``path``: the samples as ``sample<TAB>path`` lines (the ``--samples`` format)."""
    lines = ["# sample<TAB>path: the samples of this cluster run (edit to add one, then run it again)"]
    lines += [f"{s.name}\t{s.path}" for s in samples]
    return atomic_write_text(path, "\n".join(lines) + "\n")


def merge_samples(samples: Sequence[Sample], root: str | Path, settings: dict[str, Any] | None = None) -> int:
    """Merge each sample's parts into ``root/<sample>/``, then write ``root``'s samples tables.

    A sample folder without ``parts/manifest.json`` that holds a finished run of its own
    (``predict <input> -o DIR/<sample>``) is taken as it is.

    Returns:
        0 when every sample is merged.

    Raises:
        SamplesFailedError: some samples could not be merged (the others are).
        VirnucproError: every sample failed alike (that error), or ``root`` cannot be used.
    """
    from virnucpro.log import add_log_file, remove_log_file

    root = Path(root)
    check_output_dir(root, True, "merge --samples")
    if settings and any(value is not None for value in settings.values()):
        for sample in samples:
            folder = root / sample.name
            if not (folder / PARTS_DIR / "manifest.json").is_file() and RunPaths(folder).run_summary.is_file():
                raise UsageError(f"{folder}: sample {sample.name} is a predict run of its own, not parts; merge "
                                 "cannot call it at other settings (re-run its predict command with them)")
    make_dir(root)
    handler = add_log_file(root / "virnucpro.log")
    try:
        with output_dir_lock(root):
            return _merge_all(samples, root, settings or {})
    finally:
        remove_log_file(handler)


def _merge_all(samples: Sequence[Sample], root: Path, settings: dict[str, Any]) -> int:
    began = time.monotonic()
    outcomes = [SampleOutcome(s.name, s.path) for s in samples]
    errors: list[VirnucproError] = []
    for sample, outcome in zip(samples, outcomes, strict=True):
        error = _merge_one(root / sample.name, outcome, settings)
        if error is not None:
            errors.append(error)
    failed = [o for o in outcomes if o.status == "failed"]
    exit_code = EXIT_OK if not failed else EXIT_SAMPLES_FAILED
    if failed and len(failed) == len(outcomes) and len({o.exit_code for o in failed}) == 1:
        exit_code = failed[0].exit_code or EXIT_SAMPLES_FAILED
    status = "ok" if not failed else "failed" if len(failed) == len(outcomes) else "some_failed"
    write_samples_summary(root, outcomes, status, exit_code, time.monotonic() - began)
    logger.info("%d of %d samples merged, %d failed; per sample: %s", len(outcomes) - len(failed), len(outcomes),
                len(failed), root / SAMPLES_SUMMARY_NAME)
    if not failed:
        return EXIT_OK
    if exit_code != EXIT_SAMPLES_FAILED:
        raise errors[-1]
    raise SamplesFailedError(f"{len(failed)} of {len(outcomes)} samples failed ({', '.join(o.name for o in failed)}); "
                             f"each folder's {FAILED_NAME} says why, the others are merged ({root / SAMPLES_SUMMARY_NAME})")


def _merge_one(folder: Path, outcome: SampleOutcome, settings: dict[str, Any]) -> VirnucproError | None:
    """One sample: merged (or kept when current); its error is recorded and returned, not raised."""
    from virnucpro.cluster.merge import merge_runs

    failed_note = folder / FAILED_NAME
    manifest = folder / PARTS_DIR / "manifest.json"
    run_dirs = sorted(p for p in (folder / RUNS_DIR).glob("part-*") if p.is_dir())
    try:
        if manifest.is_file() and not run_dirs:
            raise MergeError(f"{folder / RUNS_DIR}: no part run of sample {outcome.name} (did its predict jobs run?)")
        if manifest.is_file():
            if _merged_is_current(folder, run_dirs, settings):
                logger.info("sample %s: already merged from its %d finished part(s)", outcome.name, len(run_dirs))
            else:
                logger.info("sample %s: merging %d part run(s) into %s", outcome.name, len(run_dirs), folder)
                merge_runs(run_dirs, folder, manifest, settings)
        elif _summary(folder).get("status") != "ok":
            raise MergeError(f"{folder}: sample {outcome.name} was not split (no {PARTS_DIR}/manifest.json: "
                             "did its split job fail?) and holds no finished run")

    except VirnucproError as exc:
        outcome.status, outcome.error, outcome.exit_code = "failed", str(exc), exc.exit_code
        logger.error("sample %s failed: %s", outcome.name, exc)
        make_dir(folder)
        atomic_write_text(failed_note, f"{exc}\n")
        return exc
    failed_note.unlink(missing_ok=True)
    summary = _summary(folder)
    outcome.status, outcome.exit_code = "ok", EXIT_OK
    outcome.counts = read_sample_counts(folder)
    seconds = (float(summary.get("wall_seconds_parts_total") or 0) + float(summary.get("merge_seconds") or 0)
               if "merged_from" in summary else float(summary.get("wall_seconds") or 0))
    outcome.seconds = round(seconds, 3)
    return None


def _summary(folder: Path) -> dict[str, Any]:
    try:
        data = json.loads(RunPaths(folder).run_summary.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _merged_is_current(folder: Path, run_dirs: Sequence[Path], settings: dict[str, Any]) -> bool:
    """True when ``folder`` holds a merge of exactly ``run_dirs``, made after each of them finished,
    and no report-only setting is asked for (which would call the parts anew)."""
    if any(value is not None for value in settings.values()):
        return False
    summary = _summary(folder)
    if summary.get("status") != "ok" or "merged_from" not in summary:
        return False
    listed = sorted(str(p.get("run_dir")) for p in summary.get("parts") or [] if isinstance(p, dict))
    if listed != sorted(str(r.resolve()) for r in run_dirs):
        return False
    merged_at = RunPaths(folder).run_summary.stat().st_mtime_ns
    try:
        return all(RunPaths(r).run_summary.stat().st_mtime_ns <= merged_at for r in run_dirs)
    except OSError:
        return False
