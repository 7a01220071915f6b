"""``virnucpro workflow snakemake``: write a ready Snakemake workflow (split -> predict per part -> merge)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from virnucpro.cluster.predict_args import note_ignored, predict_argv, with_predict_options


@click.group()
def workflow() -> None:
    """Write workflows for workflow engines (Snakemake)."""


@with_predict_options()
@workflow.command(context_settings={"show_default": True})
@click.option("-o", "--workflow-dir", required=True, type=click.Path(file_okay=False),
              help="Directory for Snakefile, config.yaml and predict-part.sh.")
@click.option("--input", "input_path", required=True, type=click.Path(dir_okay=False, exists=True),
              help="The FASTA input (plain or compressed).")
@click.option("--parts", "n_parts", required=True, type=click.IntRange(min=1), help="Number of parts.")
@click.option("--output", "--output-dir", "output", required=True, type=click.Path(file_okay=False),
              help="Directory for the merged results (parts/, runs/ and logs/ go inside it).")
@click.option("--gpus-per-part", type=click.IntRange(min=0), default=0, help="GPUs per predict job (resource gpu).")
@click.option("--cpus-per-part", type=click.IntRange(min=1), default=4, help="Threads per predict job.")
@click.option("--mem-mb", type=click.IntRange(min=1), default=32_000, help="Memory per predict job (resource mem_mb).")
@click.option("--runtime", type=click.IntRange(min=1), default=24 * 60, help="Minutes per predict job (resource runtime).")
@click.option("--partition", default=None, help="SLURM partition (resource slurm_partition) for every job.")
@click.option("--account", default=None, help="SLURM account (resource slurm_account) for every job.")
def snakemake(workflow_dir: str, input_path: str, n_parts: int, output: str, gpus_per_part: int,
              cpus_per_part: int, mem_mb: int, runtime: int, partition: str | None, account: str | None,
              **predict_values: Any) -> None:
    """Write a Snakemake workflow that splits --input into --parts parts, predicts each, merges into --output.

    Any `virnucpro predict` option is passed on to every part and kept in
    config.yaml; --no-dashboard, --force, --gpus and --parallel are accepted and
    ignored with a note (jobs set them from their own resources), and predict's
    --output-dir is another name for --output. Needs Snakemake only to run it: pip install 'virnucpro[workflow]'.

    \b
    Examples:
      virnucpro workflow snakemake -o wf/ --input sample.fa.gz --parts 16 --output results/ --gpus-per-part 1
      snakemake -s wf/Snakefile --cores 8
      snakemake -s wf/Snakefile --executor slurm --jobs 16
    """
    from virnucpro.cluster.snakemake import WorkflowSettings, write_workflow

    note_ignored(predict_values)
    settings = WorkflowSettings(
        input_path=input_path, parts=n_parts, output=Path(output),
        predict_args=predict_argv(predict_values), gpus_per_part=gpus_per_part,
        cpus_per_part=cpus_per_part, mem_mb=mem_mb, runtime_minutes=runtime, partition=partition, account=account,
    )
    snakefile = write_workflow(settings, workflow_dir)
    click.echo(f"workflow written: {snakefile}\nrun it with:  snakemake -s {snakefile} --cores N"
               f"\n   on SLURM:  snakemake -s {snakefile} --executor slurm --jobs {n_parts}")
