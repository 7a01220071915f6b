"""``virnucpro features``: work with the embeddings a run kept (``predict --keep-features``)."""

from __future__ import annotations

import click


@click.group()
def features() -> None:
    """Export the per-frame embeddings kept by `predict --keep-features`."""


@features.command()
@click.argument("run_dir", metavar="DIR", type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--output-dir", type=click.Path(file_okay=False), default=None,
              help="Where to write  [default: DIR/features]")
@click.option("--format", "fmt", type=click.Choice(["npy", "tsv"]), default="npy", show_default=True,
              help="npy: <model>_embeddings.npy (float32 [N, dim]) + <model>_ids.txt; tsv: <model>_embeddings.tsv.")
@click.option("--model", type=click.Choice(["dnabert", "esm", "both"]), default="both", show_default=True,
              help="Which embeddings: DNABERT-S, ESM-2 or both.")
@click.option("--sample", "sample", metavar="NAME", default=None,
              help="A many-sample DIR: export only this sample  [default: every finished sample]")
def export(run_dir: str, output_dir: str | None, fmt: str, model: str, sample: str | None) -> None:
    """Write the kept embeddings of the run in DIR as NumPy arrays or TSV.

    Rows follow prediction_results.txt (input order); row i of the DNABERT-S
    and ESM-2 arrays is the same frame, named on line i of <model>_ids.txt.
    Load an array without reading it all: numpy.load(path, mmap_mode="r").
    Prints the paths written.

    A many-sample DIR (predict A B ... -o DIR --keep-features) exports every
    finished sample into DIR/<sample>/features/ (with -o OUT: OUT/<sample>/),
    the same files a one-input run's export writes; a failed or unfinished
    sample is skipped with a warning line saying why. --sample NAME exports
    one sample (into -o OUT itself when given).

    \b
    Examples:
      virnucpro predict contigs.fa -o run/ --keep-features
      virnucpro features export run/
      virnucpro features export run/ --model esm --format tsv -o esm_tsv/
      virnucpro features export many/                  # many/<sample>/features/ each
      virnucpro features export many/ --sample gut2 -o gut2_features/
    """
    from virnucpro.pipeline.report.feature_export import MODELS, export_features, export_sample_features
    from virnucpro.pipeline.report.samples import is_many_sample_dir

    models = MODELS if model == "both" else (model,)
    if sample is None and not is_many_sample_dir(run_dir):
        written = export_features(run_dir, output_dir, fmt, models)
    else:
        written = export_sample_features(run_dir, sample, output_dir, fmt, models)
    for path in written:
        click.echo(str(path))
