"""``virnucpro slurm submit A.fa B.fq.gz -o OUT``: many samples as SLURM jobs.

Jobs (scripts in ``OUT/slurm/``, the ``*-samples.sbatch`` package templates)::

    split-samples.sbatch     one array job, task k splits sample k into OUT/<sample>/parts
    predict-samples.sbatch   one array job per sample (N tasks, one per part), each after
                             its own sample's split task (afterok, --kill-on-invalid-dep)
    merge-samples.sbatch     one job after every predict array has ended (afterany):
                             ``virnucpro merge --samples OUT/slurm/samples.tsv -o OUT``

One predict array per sample, not one array over every (sample, part): a sample whose
split fails cancels only its own parts, and the array size stays N (SLURM's
``MaxArraySize`` is 1001 by default). The merge job runs even when some samples failed:
it merges the others, records the failed ones (``FAILED.txt``) and writes the samples
tables, then exits 7, so ``sacct`` shows the run failed. The layout is in
:mod:`virnucpro.cluster.samples`.
"""

from __future__ import annotations

import json
import logging

from virnucpro.cluster.predict_args import shell_join
from virnucpro.cluster.samples import SHEET_NAME, write_sample_sheet
from virnucpro.cluster.slurm import (
    HEADER_MARK,
    HELPER,
    SlurmSettings,
    _sbatch,
    _sbatch_lines,
    _variables,
    template_text,
    write_scripts,
)
from virnucpro.pipeline.checkpoint import atomic_write_text

logger = logging.getLogger(__name__)

SAMPLE_SCRIPTS = ("split-samples.sbatch", "predict-samples.sbatch", "merge-samples.sbatch")


def render_sample_scripts(settings: SlurmSettings) -> dict[str, str]:
    """The three many-sample job scripts (and the per-part helper) for ``settings``, by file name."""
    out = settings.out_dir.resolve()
    slurm_dir, logs = out / "slurm", out / "slurm" / "logs"
    common = {"VIRNUCPRO": settings.command, "OUT": str(out), "SAMPLES": str(slurm_dir / SHEET_NAME)}
    headers = {
        "split-samples.sbatch": [*_sbatch_lines(settings, "split", str(logs / "split-%A_%a.out"), 1, "4G"),
                                 f"#SBATCH --array=1-{len(settings.samples)}",
                                 *_variables({**common, "PARTS": str(settings.parts)})],
        "predict-samples.sbatch": [
            # The job name (virnucpro-predict-<sample>) is given at submission: %x names the log.
            *_sbatch_lines(settings, "predict", str(logs / "%x-%A_%a.out"), settings.cpus_per_part, settings.mem),
            f"#SBATCH --array=1-{settings.parts}" + (f"%{settings.max_running}" if settings.max_running else ""),
            *([f"#SBATCH --gres=gpu:{settings.gpus_per_part}"] if settings.gpus_per_part else []),
            *_variables({**common, "SCRIPTS_DIR": str(slurm_dir), "GPUS_PER_PART": str(settings.gpus_per_part)}),
            f"PREDICT_ARGS=({shell_join(settings.predict_args)})",
        ],
        "merge-samples.sbatch": _sbatch_lines(settings, "merge", str(logs / "merge-%j.out"), 1, "4G")
        + _variables(common),
    }
    scripts = {name: template_text(name).replace(HEADER_MARK, "\n".join(headers[name])) for name in SAMPLE_SCRIPTS}
    scripts[HELPER] = template_text(HELPER)
    return scripts


def submit_samples(settings: SlurmSettings, dry_run: bool = False) -> dict[str, object]:
    """Write the sample sheet and scripts into ``OUT/slurm/`` and (unless ``dry_run``) submit them.

    Returns:
        ``{"split": id, "predict": {sample: id}, "merge": id}``, empty for a dry run.

    Raises:
        SlurmError: sbatch is missing or refused a job (jobs already submitted stay queued).
    """
    slurm_dir = write_scripts(settings, render_sample_scripts(settings))
    write_sample_sheet(settings.samples, slurm_dir / SHEET_NAME)
    if dry_run:
        logger.info("dry run: job scripts written to %s (not submitted)", slurm_dir)
        return {}
    split = _sbatch([str(slurm_dir / "split-samples.sbatch")])
    predict: dict[str, str] = {}
    for task, sample in enumerate(settings.samples, start=1):
        predict[sample.name] = _sbatch([f"--dependency=afterok:{split}_{task}", "--kill-on-invalid-dep=yes",
                                        f"--job-name=virnucpro-predict-{sample.name}",
                                        str(slurm_dir / "predict-samples.sbatch"), sample.name])
    merge = _sbatch([f"--dependency=afterany:{':'.join(predict.values())}", str(slurm_dir / "merge-samples.sbatch")])
    ids: dict[str, object] = {"split": split, "predict": predict, "merge": merge}
    atomic_write_text(slurm_dir / "submitted.json", json.dumps(ids, indent=1) + "\n")
    logger.info("submitted split array %s (%d samples), %d predict arrays (%d tasks each), merge %s",
                split, len(settings.samples), len(predict), settings.parts, merge)
    return ids


def dry_run_hint(settings: SlurmSettings) -> str:
    """How to submit the scripts a dry run wrote (printed by the CLI)."""
    slurm_dir = settings.out_dir / "slurm"
    return "\n".join([
        f"job scripts written to {slurm_dir}/ (not submitted); submit them with:",
        f"  split=$(sbatch --parsable {slurm_dir}/split-samples.sbatch); deps=; k=0",
        "  while IFS=$'\\t' read -r s _; do k=$((k+1))",
        f"    deps=$deps:$(sbatch --parsable --dependency=afterok:${{split}}_$k --kill-on-invalid-dep=yes "
        f"--job-name=\"virnucpro-predict-$s\" {slurm_dir}/predict-samples.sbatch \"$s\")",
        f"  done < <(awk '!/^[[:space:]]*(#|$)/' {slurm_dir}/{SHEET_NAME})",
        f"  sbatch --dependency=afterany$deps {slurm_dir}/merge-samples.sbatch",
    ])


def follow_samples_hint(ids: dict[str, object], settings: SlurmSettings) -> str:
    """How to follow the submitted jobs (printed by the CLI)."""
    predict = ids["predict"]
    assert isinstance(predict, dict)
    joined = ",".join([str(ids["split"]), *predict.values(), str(ids["merge"])])
    return (
        f"split array {ids['split']} ({len(settings.samples)} samples), {len(predict)} predict arrays "
        f"({settings.parts} parts each), merge job {ids['merge']}\n"
        f"follow:   squeue -j {joined}\n"
        f"states:   sacct -j {joined} -X -o JobID,JobName,State,Elapsed\n"
        f"logs:     {settings.out_dir / 'slurm' / 'logs'}/\n"
        f"results:  {settings.out_dir}/<sample>/ and {settings.out_dir}/samples_summary.tsv (when the merge job "
        "has finished)\n"
        "resume:   run the same command again (finished parts and merged samples are reused)"
    )
