"""``virnucpro slurm submit``: split, one array task per part, merge, chained with ``afterok``.

Layout of the output directory::

    OUT/
      prediction_results.txt ...      the merged results (written by the merge job)
      parts/                           part-0001.fa.gz ... + manifest.json (split job)
      runs/part-0001/ ...              one predict run per part (array job)
      slurm/split.sbatch               the three job scripts, ready to resubmit by hand
      slurm/predict.sbatch
      slurm/merge.sbatch
      slurm/predict-part.sh            what one array task runs
      slurm/logs/                      the jobs' stdout/stderr
      slurm/submitted.json             job ids of the last submission

The scripts are the package templates (``virnucpro/cluster/templates/``, also
in ``scripts/slurm/`` for labs that edit their own) with a header of
``#SBATCH`` lines and shell variables filled in. Submitting the same command
again resubmits all three: the split job finds a matching manifest and writes
nothing, finished parts' predict runs resume and finish at once, and the merge
runs again.

Several samples (``slurm submit A.fa B.fa -o OUT`` or ``--samples FILE``) are
:mod:`.slurm_samples`: one folder per sample, the same steps per sample.
"""

from __future__ import annotations

import json
import logging
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from virnucpro.cluster.predict_args import shell_join
from virnucpro.errors import OutputError, SlurmError
from virnucpro.pipeline.checkpoint import atomic_write_text
from virnucpro.pipeline.run.samples import Sample

logger = logging.getLogger(__name__)

SCRIPTS = ("split.sbatch", "predict.sbatch", "merge.sbatch")
HELPER = "predict-part.sh"
HEADER_MARK = "@@HEADER@@"
BODY_MARK = "# ---- the job (nothing below needs editing) ----"


@dataclass(frozen=True)
class SlurmSettings:
    """What ``virnucpro slurm submit`` was asked for."""

    input_path: str
    out_dir: Path
    parts: int
    predict_args: list[str] = field(default_factory=list)
    partition: str | None = None
    gpus_per_part: int = 0
    cpus_per_part: int = 4
    mem: str = "32G"
    time: str = "24:00:00"
    account: str | None = None
    max_running: int | None = None
    virnucpro: str = ""
    #: Several samples (:mod:`.slurm_samples`): ``input_path`` is then unused.
    samples: tuple[Sample, ...] = ()

    @property
    def command(self) -> str:
        """How jobs run virnucpro: this interpreter, so the same install is used on the nodes."""
        return self.virnucpro or f"{sys.executable} -m virnucpro"


def template_text(name: str) -> str:
    """The text of a packaged job template."""
    return resources.files("virnucpro.cluster").joinpath("templates").joinpath(name).read_text(encoding="utf-8")


def template_body(text: str) -> str:
    """The part of a job script below its header (what every copy of a template shares)."""
    return text[text.index(BODY_MARK):]


def _sbatch_lines(settings: SlurmSettings, name: str, log: str, cpus: int, mem: str) -> list[str]:
    lines = [f"#SBATCH --job-name=virnucpro-{name}", f"#SBATCH --output={log}",
             f"#SBATCH --cpus-per-task={cpus}", f"#SBATCH --mem={mem}", f"#SBATCH --time={settings.time}"]
    if settings.partition:
        lines.append(f"#SBATCH --partition={settings.partition}")
    if settings.account:
        lines.append(f"#SBATCH --account={settings.account}")
    return lines


def _variables(values: dict[str, str]) -> list[str]:
    return [f"{key}={shlex.quote(value)}" for key, value in values.items()]


def render_scripts(settings: SlurmSettings) -> dict[str, str]:
    """The three job scripts (and the per-part helper) for ``settings``, by file name."""
    out = settings.out_dir.resolve()
    slurm_dir, logs = out / "slurm", out / "slurm" / "logs"
    common = {"VIRNUCPRO": settings.command, "PARTS_DIR": str(out / "parts"), "RUNS_DIR": str(out / "runs")}
    split_input = settings.input_path if settings.input_path == "-" else str(Path(settings.input_path).resolve())
    headers = {
        "split.sbatch": _sbatch_lines(settings, "split", str(logs / "split-%j.out"), 1, "4G")
        + _variables({**common, "INPUT": split_input, "PARTS": str(settings.parts)}),
        "predict.sbatch": [
            *_sbatch_lines(settings, "predict", str(logs / "predict-%A_%a.out"), settings.cpus_per_part, settings.mem),
            f"#SBATCH --array=1-{settings.parts}" + (f"%{settings.max_running}" if settings.max_running else ""),
            *([f"#SBATCH --gres=gpu:{settings.gpus_per_part}"] if settings.gpus_per_part else []),
            *_variables({**common, "SCRIPTS_DIR": str(slurm_dir), "GPUS_PER_PART": str(settings.gpus_per_part)}),
            f"PREDICT_ARGS=({shell_join(settings.predict_args)})",
        ],
        "merge.sbatch": _sbatch_lines(settings, "merge", str(logs / "merge-%j.out"), 1, "4G")
        + _variables({**common, "OUT": str(out)}),
    }
    scripts = {name: template_text(name).replace(HEADER_MARK, "\n".join(headers[name])) for name in SCRIPTS}
    scripts[HELPER] = template_text(HELPER)
    return scripts


def write_scripts(settings: SlurmSettings, scripts: dict[str, str] | None = None) -> Path:
    """Write the job scripts (``scripts``, default :func:`render_scripts`) into ``OUT/slurm/``;
    returns that directory."""
    slurm_dir = settings.out_dir / "slurm"
    try:
        (slurm_dir / "logs").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create directory {slurm_dir}: {exc.strerror or exc}") from None
    for name, text in (scripts if scripts is not None else render_scripts(settings)).items():
        path = atomic_write_text(slurm_dir / name, text)
        path.chmod(0o755)
    return slurm_dir


def _sbatch(args: list[str]) -> str:
    """Run ``sbatch --parsable ARGS``; returns the job id."""
    sbatch = shutil.which("sbatch")
    if sbatch is None:
        raise SlurmError("sbatch not found on PATH (is this a SLURM login node?); --dry-run only writes the scripts")
    result = subprocess.run([sbatch, "--parsable", *args], capture_output=True, text=True)
    if result.returncode != 0:
        message = " ".join(result.stderr.split()) or f"exit status {result.returncode}"
        raise SlurmError(f"sbatch {' '.join(args)} failed: {message}")
    job_id = result.stdout.strip().split(";", 1)[0]
    if not job_id.isdigit():
        raise SlurmError(f"sbatch {' '.join(args)} printed no job id: {result.stdout.strip()!r}")
    return job_id


def submit(settings: SlurmSettings, dry_run: bool = False) -> dict[str, str]:
    """Write the scripts and (unless ``dry_run``) submit split -> array -> merge.

    Returns:
        ``{"split": id, "predict": id, "merge": id}``, empty for a dry run.

    Raises:
        SlurmError: sbatch is missing or refused a job (jobs already submitted stay queued).
    """
    slurm_dir = write_scripts(settings)
    if dry_run:
        logger.info("dry run: job scripts written to %s (not submitted)", slurm_dir)
        return {}
    ids: dict[str, str] = {}
    ids["split"] = _sbatch([str(slurm_dir / "split.sbatch")])
    # kill-on-invalid-dep: when a part fails, the merge is cancelled instead of waiting forever.
    ids["predict"] = _sbatch([f"--dependency=afterok:{ids['split']}", "--kill-on-invalid-dep=yes",
                              str(slurm_dir / "predict.sbatch")])
    ids["merge"] = _sbatch([f"--dependency=afterok:{ids['predict']}", "--kill-on-invalid-dep=yes",
                            str(slurm_dir / "merge.sbatch")])
    atomic_write_text(slurm_dir / "submitted.json", json.dumps(ids, indent=1) + "\n")
    logger.info("submitted split %s, predict array %s (%d tasks), merge %s",
                ids["split"], ids["predict"], settings.parts, ids["merge"])
    return ids


def follow_hint(ids: dict[str, str], settings: SlurmSettings) -> str:
    """How to follow the submitted jobs (printed by the CLI)."""
    logs = settings.out_dir / "slurm" / "logs"
    joined = ",".join(ids.values())
    return (
        f"split job {ids['split']}, predict array {ids['predict']} ({settings.parts} tasks), merge job {ids['merge']}\n"
        f"follow:   squeue -j {joined}\n"
        f"states:   sacct -j {joined} -X -o JobID,JobName,State,Elapsed\n"
        f"logs:     {logs}/\n"
        f"results:  {settings.out_dir}/ (when the merge job has finished)\n"
        "resume:   run the same command again (finished parts are reused)"
    )
