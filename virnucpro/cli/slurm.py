"""``virnucpro slurm submit``: run split -> predict per part -> merge as SLURM jobs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from virnucpro.cluster.predict_args import note_ignored, predict_argv, with_predict_options


@click.group()
def slurm() -> None:
    """Run virnucpro on a SLURM cluster (no Snakemake needed)."""


@with_predict_options()
@slurm.command(context_settings={"show_default": True})
@click.argument("input_path", metavar="INPUT", type=click.Path(dir_okay=False))
@click.option("-o", "--output-dir", required=True, type=click.Path(file_okay=False),
              help="Directory for the results, parts/, runs/ and slurm/ (scripts and logs).")
@click.option("-n", "--parts", "n_parts", required=True, type=click.IntRange(min=1),
              help="Number of parts (array tasks).")
@click.option("--partition", default=None, help="SLURM partition for every job [default: the cluster's].")
@click.option("--account", default=None, help="SLURM account for every job [default: yours].")
@click.option("--gpus-per-part", type=click.IntRange(min=0), default=0,
              help="GPUs per array task (--gres=gpu:G); predict runs one worker per GPU.")
@click.option("--cpus-per-part", type=click.IntRange(min=1), default=4, help="CPUs per array task.")
@click.option("--mem", default="32G", help="Memory per array task (sbatch --mem).")
@click.option("--time", "time_limit", default="24:00:00", help="Time limit of each job (sbatch --time).")
@click.option("--max-running", type=click.IntRange(min=1), default=None,
              help="At most this many parts at once (--array=1-N%K), e.g. to spare a shared filesystem.")
@click.option("--dry-run", is_flag=True, help="Only write the job scripts into OUT/slurm/.")
def submit(input_path: str, output_dir: str, n_parts: int, partition: str | None, account: str | None,
           gpus_per_part: int, cpus_per_part: int, mem: str, time_limit: str, max_running: int | None, dry_run: bool,
           **predict_values: Any) -> None:
    """Split INPUT into N parts, predict each part in a job array, merge into OUTPUT_DIR.

    Any `virnucpro predict` option (models, chunk length, precision, ...) is
    passed on to every part; a pasted predict command line is accepted whole:
    --no-dashboard, --force, --gpus and --parallel are ignored with a note
    (jobs set them from their own resources). Jobs are chained with --dependency=afterok;
    submitting the same command again resumes (finished parts are reused).

    \b
    Example:
      virnucpro slurm submit sample.fa.gz -o results/ -n 16 --gpus-per-part 1 \\
          --partition gpu --cpus-per-part 8 --mem 64G --time 12:00:00
    """
    from virnucpro.cluster.slurm import SlurmSettings, follow_hint
    from virnucpro.cluster.slurm import submit as submit_jobs

    if input_path == "-":
        raise click.UsageError("slurm submit needs an input file (a job cannot read this terminal's stdin)")
    if not Path(input_path).is_file():
        raise click.BadParameter(f"{input_path}: no such file", param_hint="INPUT")
    note_ignored(predict_values)
    settings = SlurmSettings(
        input_path=input_path, out_dir=Path(output_dir), parts=n_parts,
        predict_args=predict_argv(predict_values), partition=partition,
        gpus_per_part=gpus_per_part, cpus_per_part=cpus_per_part, mem=mem, time=time_limit, account=account,
        max_running=max_running,
    )
    ids = submit_jobs(settings, dry_run=dry_run)
    if dry_run:
        slurm_dir = Path(output_dir) / "slurm"
        click.echo(f"job scripts written to {slurm_dir}/ (not submitted); submit them with:")
        click.echo(f"  split=$(sbatch --parsable {slurm_dir}/split.sbatch)")
        click.echo(f"  array=$(sbatch --parsable --dependency=afterok:$split --kill-on-invalid-dep=yes {slurm_dir}/predict.sbatch)")
        click.echo(f"  sbatch --dependency=afterok:$array --kill-on-invalid-dep=yes {slurm_dir}/merge.sbatch")
        return
    click.echo(follow_hint(ids, settings))
