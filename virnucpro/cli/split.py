"""``virnucpro split``: cut one input into N parts for cluster runs."""

from __future__ import annotations

import click


@click.command()
@click.argument("input_path", metavar="INPUT", type=str)
@click.option("-n", "--parts", "n_parts", required=True, type=click.IntRange(min=1), help="Number of parts.")
@click.option("-o", "--output-dir", required=True, type=click.Path(file_okay=False),
              help="Directory for part-0001.fa.gz ... and manifest.json (created if missing).")
def split(input_path: str, n_parts: int, output_dir: str) -> None:
    """Split INPUT (FASTA or FASTQ, plain or compressed; '-' for stdin) into N gzip FASTA parts.

    Parts are contiguous in input order, balanced by bases, and never cut a
    record; the same input and N give byte-identical parts on one installation
    (isal and zlib compress differently; the records are the same). Each part is then
    an ordinary run (``virnucpro predict PARTS/part-0001.fa.gz -o RUNS/part-0001``)
    and ``virnucpro merge`` joins the runs.

    \b
    Example:
      virnucpro split sample.fa.gz -n 16 -o parts/
    """
    from virnucpro.cluster.split import split_fasta

    split_fasta(input_path, n_parts, output_dir)
