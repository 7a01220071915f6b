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
@click.argument("inputs", metavar="INPUT...", nargs=-1, type=click.Path(dir_okay=False))
@click.option("--samples", "samples_file", type=str, default=None, metavar="FILE",
              help="More samples: a TSV of 'sample<TAB>path' per line, as predict --samples. Several samples "
                   "(INPUTs and/or --samples) write OUTPUT_DIR/<sample>/ each.")
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
def submit(inputs: tuple[str, ...], samples_file: str | None, output_dir: str, n_parts: int, partition: str | None, account: str | None,
           gpus_per_part: int, cpus_per_part: int, mem: str, time_limit: str, max_running: int | None, dry_run: bool,
           **predict_values: Any) -> None:
    """Split INPUT into N parts, predict each part in a job array, merge into OUTPUT_DIR.

    Several INPUTs (or --samples FILE) are samples of one run, named as predict
    names them (same refusals): each is split into N parts in
    OUTPUT_DIR/<sample>/parts/, predicted by its own job array into
    OUTPUT_DIR/<sample>/runs/ and merged into OUTPUT_DIR/<sample>/; a last job
    (virnucpro merge --samples) writes OUTPUT_DIR/samples_summary.tsv and
    run_summary.json, as a many-sample predict does. A sample that fails is
    reported there (its FAILED.txt) and the others finish.

    Any `virnucpro predict` option (models, chunk length, precision, ...) is
    passed on to every part; a pasted predict command line is accepted whole:
    --no-dashboard, --force, --gpus and --parallel are ignored with a note
    (jobs set them from their own resources). Jobs are chained with --dependency=afterok;
    submitting the same command again resumes (finished parts are reused).

    \b
    Example:
      virnucpro slurm submit sample.fa.gz -o results/ -n 16 --gpus-per-part 1 \\
          --partition gpu --cpus-per-part 8 --mem 64G --time 12:00:00
      virnucpro slurm submit gut1.fa.gz gut2.fq.gz -o many/ -n 4 --gpus-per-part 1
    """
    from virnucpro.cluster.samples import check_output_dir, cluster_samples
    from virnucpro.cluster.slurm import SlurmSettings, follow_hint
    from virnucpro.cluster.slurm import submit as submit_jobs

    if not inputs and samples_file is None:
        raise click.UsageError("Missing argument 'INPUT...' (or --samples FILE)")
    if len(inputs) != 1 or samples_file is not None:
        _submit_samples(cluster_samples(inputs, samples_file, "slurm submit"), output_dir, n_parts, dry_run,
                        dict(predict_values), partition=partition, gpus_per_part=gpus_per_part,
                        cpus_per_part=cpus_per_part, mem=mem, time=time_limit, account=account,
                        max_running=max_running)
        return
    input_path = inputs[0]
    if input_path == "-":
        raise click.UsageError("slurm submit needs an input file (a job cannot read this terminal's stdin)")
    if not Path(input_path).is_file():
        raise click.BadParameter(f"{input_path}: no such file", param_hint="INPUT")
    check_output_dir(Path(output_dir), False, "slurm submit")
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


def _submit_samples(samples: list, output_dir: str, n_parts: int, dry_run: bool, predict_values: dict[str, Any],
                    **resources: Any) -> None:
    from virnucpro.cluster.samples import check_output_dir
    from virnucpro.cluster.slurm import SlurmSettings
    from virnucpro.cluster.slurm_samples import dry_run_hint, follow_samples_hint, submit_samples

    check_output_dir(Path(output_dir), True, "slurm submit")
    note_ignored(predict_values)
    settings = SlurmSettings(input_path="", out_dir=Path(output_dir), parts=n_parts, samples=tuple(samples),
                             predict_args=predict_argv(predict_values), **resources)
    ids = submit_samples(settings, dry_run=dry_run)
    click.echo(dry_run_hint(settings) if dry_run else follow_samples_hint(ids, settings))
