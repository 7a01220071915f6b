"""``virnucpro plot``: per-chunk virus scores along each sequence of a finished run."""

from __future__ import annotations

import click


@click.command()
@click.argument("run_dir", metavar="DIR", type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Plot file; .pdf (one page per 6 sequences), .png or .svg; {sample} in it is replaced by each "
                   "sample's name  [default: DIR/plots.pdf, or DIR/<sample>/plots.pdf for a many-sample DIR]")
@click.option("--top", type=click.IntRange(min=1), default=None,
              help="Plot the N sequences with the highest virus_score  [default: 10]")
@click.option("--ids", multiple=True, metavar="ID",
              help="Plot these sequences instead (repeat the option, or separate IDs with commas).")
@click.option("--sample", "sample", metavar="NAME", default=None,
              help="A many-sample DIR: plot only this sample  [default: every finished sample]")
def plot(run_dir: str, output: str | None, top: int | None, ids: tuple[str, ...], sample: str | None) -> None:
    """Draw each chunk's virus score along its sequence for a finished `predict` run in DIR.

    One panel per sequence: x is the position (bp, kb or Mb), each chunk is a
    bar as long as the chunk and as high as its chunk score ((max + min) / 2 of
    its kept frames' virus scores), coloured by the chunk's call; grey hatching
    marks stretches with no kept frame, a dark band where chunks overlap, a
    dashed line the run's --min-score. Sequences are ordered by virus_score.
    Needs the optional extra: pip install 'virnucpro[plot]' (exit 1 without it).

    A many-sample DIR (predict A B ... -o DIR) gives one plot per finished
    sample, DIR/<sample>/plots.pdf (or -o with {sample} in the name); a
    failed or unfinished sample is skipped with a warning line saying why.
    --sample NAME plots one sample (then --ids and a plain -o work as for a
    one-input run). Prints the paths written.

    \b
    Examples:
      virnucpro plot results/
      virnucpro plot results/ -o top20.png --top 20
      virnucpro plot results/ --ids contig_7 --ids contig_12 -o two.pdf
      virnucpro plot many/                                  # many/<sample>/plots.pdf each
      virnucpro plot many/ -o plots/{sample}.png --top 5
      virnucpro plot many/ --sample gut2 --ids contig_7 -o gut2.pdf
    """
    from virnucpro.pipeline.report.plot import DEFAULT_TOP, plot_run, plot_samples
    from virnucpro.pipeline.report.samples import is_many_sample_dir

    if top is not None and ids:
        raise click.UsageError("use either --top or --ids, not both")
    if sample is None and not is_many_sample_dir(run_dir):
        click.echo(str(plot_run(run_dir, output, top or DEFAULT_TOP, list(ids) or None)))
        return
    for written in plot_samples(run_dir, sample, output, top or DEFAULT_TOP, list(ids) or None):
        click.echo(str(written))
