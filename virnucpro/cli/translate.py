"""``virnucpro translate``: chunk sequences and keep the six-frame translations without stops."""

from __future__ import annotations

import click


@click.command()
@click.argument("input_path", metavar="INPUT", type=str)
@click.option(
    "-o",
    "--output-dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Directory for the three FASTA files (created if missing).",
)
@click.option(
    "-c",
    "--chunk-length",
    type=click.IntRange(min=3),
    default=500,
    show_default=True,
    help="Chunk length in bp (the published models use 300 or 500).",
)
def translate(input_path: str, output_dir: str, chunk_length: int) -> None:
    """Cut each sequence of INPUT into chunks and translate six frames.

    INPUT is a DNA FASTA or FASTQ file (plain, gzip, bzip2 or xz, told apart
    by content; FASTQ qualities are ignored); '-' reads stdin, and a named pipe or <(zcat x.fa.gz) works too.
    Sequences may hold the IUPAC codes ACGTUN RYSWKMBDHV (any case); RNA is
    read as DNA (U as T); any other character is an input error. Writes, in
    OUTPUT_DIR, <stem>_chunked<C>.fa
    (every chunk), <stem>_identified_nucleotide.fa and
    <stem>_identified_protein.faa (the frames without a stop codon), with the
    same IDs, sequences and order as the published VirNucPro; one line per
    sequence. <stem> is the input name without FASTA and compression
    extensions ('stdin' for '-', 'stream' for /dev/fd/N). Nothing is written when the input is invalid.
    """
    from virnucpro.pipeline.stages.frames import main

    main(input_path, output_dir, chunk_length)
