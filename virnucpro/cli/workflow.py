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
@click.option("--input", "inputs", multiple=True, type=click.Path(dir_okay=False),
              help="The FASTA/FASTQ input (plain or compressed); repeat it for several samples.")
@click.option("--samples", "samples_file", type=str, default=None, metavar="FILE",
              help="More samples: a TSV of 'sample<TAB>path' per line, as predict --samples. Several samples "
                   "write OUTPUT/<sample>/ each.")
@click.option("--parts", "n_parts", required=True, type=click.IntRange(min=1), help="Number of parts.")
@click.option("--output", "--output-dir", "output", required=True, type=click.Path(file_okay=False),
              help="Directory for the merged results (parts/, runs/ and logs/ go inside it).")
@click.option("--gpus-per-part", type=click.IntRange(min=0), default=0, help="GPUs per predict job (resource gpu).")
@click.option("--cpus-per-part", type=click.IntRange(min=1), default=4, help="Threads per predict job.")
@click.option("--mem-mb", type=click.IntRange(min=1), default=32_000, help="Memory per predict job (resource mem_mb).")
@click.option("--runtime", type=click.IntRange(min=1), default=24 * 60, help="Minutes per predict job (resource runtime).")
@click.option("--partition", default=None, help="SLURM partition (resource slurm_partition) for every job.")
@click.option("--account", default=None, help="SLURM account (resource slurm_account) for every job.")
def snakemake(workflow_dir: str, inputs: tuple[str, ...], samples_file: str | None, n_parts: int, output: str, gpus_per_part: int,
              cpus_per_part: int, mem_mb: int, runtime: int, partition: str | None, account: str | None,
              **predict_values: Any) -> None:
    """Write a Snakemake workflow that splits --input into --parts parts, predicts each, merges into --output.

    Any `virnucpro predict` option is passed on to every part and kept in
    config.yaml; --no-dashboard, --force, --gpus and --parallel are accepted and
    ignored with a note (jobs set them from their own resources), and predict's
    --output-dir is another name for --output. Needs Snakemake only to run it: pip install 'virnucpro[workflow]'.

    Several --input (or --samples FILE) are samples of one run, named as
    predict names them (same refusals): WF_DIR gets samples.tsv (the sample
    sheet config.yaml names); each sample is split, predicted per part and
    merged into OUTPUT/<sample>/, and a last rule (virnucpro merge --samples)
    writes OUTPUT/samples_summary.tsv and run_summary.json, as a many-sample
    predict does. Add --keep-going to snakemake to let the other samples
    finish when one fails.

    \b
    Examples:
      virnucpro workflow snakemake -o wf/ --input sample.fa.gz --parts 16 --output results/ --gpus-per-part 1
      virnucpro workflow snakemake -o wf/ --samples samples.tsv --parts 4 --output many/
      snakemake -s wf/Snakefile --cores 8
      snakemake -s wf/Snakefile --executor slurm --jobs 16
    """
    from virnucpro.cluster.samples import check_output_dir, cluster_samples
    from virnucpro.cluster.snakemake import WorkflowSettings, write_workflow

    if not inputs and samples_file is None:
        raise click.UsageError("Missing option '--input' (or --samples FILE)")
    many = len(inputs) != 1 or samples_file is not None
    samples = tuple(cluster_samples(inputs, samples_file, "workflow snakemake")) if many else ()
    if not many and not Path(inputs[0]).is_file():
        raise click.BadParameter(f"{inputs[0]}: no such file", param_hint="--input")
    check_output_dir(Path(output), many, "workflow snakemake")
    note_ignored(predict_values)
    settings = WorkflowSettings(
        input_path="" if many else inputs[0], samples=samples, parts=n_parts, output=Path(output),
        predict_args=predict_argv(predict_values), gpus_per_part=gpus_per_part,
        cpus_per_part=cpus_per_part, mem_mb=mem_mb, runtime_minutes=runtime, partition=partition, account=account,
    )
    snakefile = write_workflow(settings, workflow_dir)
    click.echo(f"workflow written: {snakefile}\nrun it with:  snakemake -s {snakefile} --cores N"
               f"\n   on SLURM:  snakemake -s {snakefile} --executor slurm --jobs {n_parts * max(1, len(samples))}"
               + ("\n(add --keep-going to let the other samples finish when one fails)" if samples else ""))
