"""``virnucpro merge``: join the runs of split parts into one set of result tables."""

from __future__ import annotations

import click


@click.command()
@click.argument("run_dirs", metavar="RUN_DIR...", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("-o", "--output-dir", required=True, type=click.Path(file_okay=False),
              help="Directory for the merged tables, run_summary.json and virnucpro.log.")
@click.option("--manifest", "manifest_path", type=click.Path(dir_okay=False), default=None,
              help="PARTS_DIR/manifest.json of the split: orders the parts and checks that each run is one of them.")
def merge(run_dirs: tuple[str, ...], output_dir: str, manifest_path: str | None) -> None:
    """Merge the predict runs of the parts of one input (RUN_DIR...) into OUTPUT_DIR.

    Writes prediction_results.txt, prediction_results_highestscore.csv and
    contig_summary.tsv as a single run of the whole input would, plus
    run_summary.json (counts summed, every part's wall time and devices).
    Without --manifest the parts are taken in the order given. Refuses (one
    line naming the part) a missing, unfinished or failed part, a part run
    with other settings or models, a part that is not in the manifest, and a
    part given twice. Parts with no records need no run.

    \b
    Example:
      virnucpro merge runs/part-* -o results/ --manifest parts/manifest.json
    """
    from virnucpro.cluster.merge import merge_runs

    merge_runs(list(run_dirs), output_dir, manifest_path)
