"""``virnucpro merge``: join the runs of split parts into one set of result tables."""

from __future__ import annotations

import click


@click.command()
@click.argument("run_dirs", metavar="RUN_DIR...", nargs=-1, type=click.Path(file_okay=False))
@click.option("-o", "--output-dir", required=True, type=click.Path(file_okay=False),
              help="Directory for the merged files (listed above).")
@click.option("--manifest", "manifest_path", type=click.Path(dir_okay=False), default=None,
              help="PARTS_DIR/manifest.json of the split: orders the parts and checks that each run is one of them.")
@click.option("--samples", "samples_file", type=str, default=None, metavar="FILE",
              help="Many samples (no RUN_DIR): merge each sample's OUTPUT_DIR/<sample>/runs/part-*/ into "
                   "OUTPUT_DIR/<sample>/ and write OUTPUT_DIR/samples_summary.tsv and run_summary.json. FILE: "
                   "'sample<TAB>path' per line, as predict --samples.")
@click.option("--min-score", type=click.FloatRange(min=0, max=1), default=None,
              help="Call the merged run at this --min-score (virus chunks and sequences) [default: the parts' own, "
                   "which must then agree].")
@click.option("--min-length", type=click.IntRange(min=0), default=None, metavar="N",
              help="Leave records shorter than N bp unscored (too_short) [default: the highest of the parts'; "
                   "never lower, those records were not scored].")
@click.option("--region-gap", type=click.IntRange(min=0), default=None, metavar="N",
              help="Viral regions: merge virus chunks across at most N other chunks [default: the parts' own].")
@click.option("--region-min-chunks", type=click.IntRange(min=1), default=None, metavar="N",
              help="Virus chunks a viral region needs [default: the parts' own].")
def merge(run_dirs: tuple[str, ...], output_dir: str, manifest_path: str | None, samples_file: str | None,
          min_score: float | None, min_length: int | None, region_gap: int | None,
          region_min_chunks: int | None) -> None:
    """Merge the predict runs of the parts of one input (RUN_DIR...) into OUTPUT_DIR.

    Writes what a single run of the whole input writes, from the parts'
    tables (no part is re-run):

    \b
      prediction_results.txt               per-frame scores (published format)
      prediction_results_highestscore.csv  per-chunk calls (published format)
      contig_summary.tsv                   per-sequence scores and calls
      chunk_scores.tsv                     per-chunk scores
      viral_contigs.fa                     sequences called virus (when the parts have it)
      viral_regions.tsv, .bed, .gff3       viral regions inside sequences
      run_summary.json                     counts, settings, every part's wall time and devices
      virnucpro_mqc.json, virnucpro_generalstats_mqc.json   MultiQC custom content
      virnucpro.log                        the merge's log
      NOTICE.txt                           only for parts made by the demo models

    Parts may differ in --min-score, --min-length and the --region-*
    settings: merge calls them all at the value it is given (re-thresholding
    a merged result costs no part run). Without --manifest the parts are
    taken in the order given. Refuses (one line naming the part) a missing,
    unfinished or failed part, a part run with other models or scoring
    settings, a part that is not in the manifest, and a part given twice;
    a refused merge leaves nothing new in OUTPUT_DIR. Parts with no records
    need no run.

    Many samples (the layout slurm submit and workflow snakemake write for
    several inputs): --samples FILE -o DIR merges each sample's parts,
    DIR/<sample>/runs/part-*/ with DIR/<sample>/parts/manifest.json, into
    DIR/<sample>/ (a sample already merged from the same finished parts is
    kept; a folder with no parts/ that holds a finished predict run is taken
    as it is), then writes DIR/samples_summary.tsv and DIR/run_summary.json as
    a many-sample predict does, so plot, features export and MultiQC take DIR.
    A sample that cannot be merged gets DIR/<sample>/FAILED.txt; the others
    are merged, and the exit code is 7. By hand, per sample:
    split IN -n N -o DIR/<sample>/parts, predict each part into
    DIR/<sample>/runs/part-000k, then merge --samples FILE -o DIR.

    \b
    Examples:
      virnucpro merge runs/part-* -o results/ --manifest parts/manifest.json
      virnucpro merge --samples samples.tsv -o many/
    """
    settings = {"min_score": min_score, "min_length": min_length, "region_gap": region_gap,
                "region_min_chunks": region_min_chunks}
    if samples_file is not None:
        from virnucpro.cluster.samples import cluster_samples, merge_samples

        if run_dirs or manifest_path is not None:
            raise click.UsageError("--samples takes the parts from OUTPUT_DIR/<sample>/runs/: give no RUN_DIR "
                                   "and no --manifest")
        merge_samples(cluster_samples((), samples_file, "merge --samples"), output_dir, settings)
        return
    if not run_dirs:
        raise click.UsageError("Missing argument 'RUN_DIR...' (or --samples FILE)")

    from virnucpro.cluster.merge import merge_runs
    from virnucpro.pipeline.report.samples import refuse_many_sample_dir

    for run_dir in run_dirs:  # merge joins the parts of ONE input; samples: --samples
        refuse_many_sample_dir(run_dir, "merge")

    merge_runs(list(run_dirs), output_dir, manifest_path, settings)
