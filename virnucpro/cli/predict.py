"""``virnucpro predict``: the whole method, resumable, on CPU, one GPU or many."""

from __future__ import annotations

import click

_PRECISIONS = ("auto", "fp32", "bf16", "fp16")
#: ``--compile`` values: :data:`virnucpro.models.fusion.COMPILE_MODES`, spelt here so --help needs no torch.
COMPILE_CHOICES = ("auto", "on", "off")


class ShardSize(click.ParamType):
    """A positive frame count, or ``auto`` (None)."""

    name = "N|auto"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> int | None:
        if value is None or isinstance(value, int) and value > 0:
            return value  # type: ignore[return-value]
        text = str(value).strip().lower()
        if text == "auto":
            return None
        if text.isdigit() and int(text) > 0:
            return int(text)
        self.fail(f"{value!r} is not a positive number of frames or 'auto'", param, ctx)


@click.command()
@click.argument("inputs", metavar="INPUT...", type=str, nargs=-1)
@click.option("--samples", "samples_file", type=str, default=None, metavar="FILE",
              help="More samples: a TSV of 'sample<TAB>path' per line (# comments allowed). Several samples "
                   "(INPUTs and/or --samples) write DIR/<sample>/ each.")
@click.option("-o", "--output-dir", required=True, type=click.Path(file_okay=False),
              help="Directory for results and resumable work (created if missing).")
@click.option("-m", "--model-type", type=click.Choice(["300", "500"]), default="500", show_default=True,
              help="Published classifier to use; also the default chunk length.")
@click.option("--model-path", type=click.Path(), default=None,
              help="A classifier file instead of the published one (published pickle, state dict or safetensors), "
                   "or a MODEL_DIR from 'virnucpro train'.")
@click.option("-c", "--chunk-length", type=click.IntRange(min=3), default=None,
              help="Chunk length in bp [default: the model type]; another length than the classifier's "
                   "is warned about, below 30 refused.")
@click.option("--allow-chunk-length", is_flag=True, help="Accept a --chunk-length below 30 bp.")
@click.option("--models", "model_set", type=click.Choice(["published", "demo"]), default="published", show_default=True,
              help="'demo' uses tiny random models built locally: runs anywhere, scores are meaningless.")
@click.option("--esm-model", default=None, metavar="NAME|FILE",
              help="ESM-2 model name (torch.hub cache) or local .pt file [default: esm2_t36_3B_UR50D].")
@click.option("--dnabert-model", default=None, metavar="HUB_ID|DIR",
              help="DNABERT-S Hugging Face id or local directory [default: zhihan1996/DNABERT-S].")
@click.option("--dnabert-revision", default=None, metavar="REV", help="Hub revision (branch, tag or commit) of DNABERT-S.")
@click.option("--device", default="auto", show_default=True, metavar="auto|cpu|cuda|cuda:N",
              help="Device for a single-process run.")
@click.option("--precision", type=click.Choice(_PRECISIONS), default="auto", show_default=True,
              help="auto = BF16 on GPUs of compute capability >= 8.0, FP32 otherwise.")
@click.option("--batch-tokens", type=click.IntRange(min=1), default=None,
              help="Padded tokens per model batch [default: sized to the device].")
@click.option("--compile", "compile_mode", type=click.Choice(COMPILE_CHOICES), default="auto", show_default=True,
              help="Fuse each embedding layer with torch.compile: auto = on CUDA when Triton is importable, "
                   "eager elsewhere; on = wherever a compiler exists; off = eager.")
@click.option("--offline", is_flag=True, help="Never touch the network; use cached or local models only.")
@click.option("--parallel", is_flag=True, help="One worker per visible GPU.")
@click.option("--gpus", default=None, metavar="0,1,...", help="GPU ordinals to use (implies --parallel).")
@click.option("--workers", type=click.IntRange(min=0), default=0, show_default=True,
              help="CPU worker processes (threads are split between them); 0 = run in this process.")
@click.option("--shard-size", type=ShardSize(), default="auto", show_default=True, metavar="N|auto",
              help="Kept frames per work shard (the unit of resume and of work per worker). auto: about 4 shards "
                   "per worker, 1000-10000 frames; a resumed run keeps the size it started with.")
@click.option("--force", is_flag=True, help="Discard a previous run in the output directory and start over.")
@click.option("--no-dashboard", is_flag=True, help="Plain progress lines instead of the live view.")
@click.option("--keep-features", is_flag=True,
              help="Keep per-frame embeddings under DIR/work/features/ (later runs keep them too).")
@click.option("--discard-features", is_flag=True,
              help="Delete embeddings kept by an earlier --keep-features run once this run finishes.")
@click.option("--stall-timeout", type=click.FloatRange(min=0), default=600, show_default=True, metavar="SECONDS",
              help="Kill and retry a worker process that reports no progress for this long (a hung GPU; progress "
                   "comes after every batch); 0 = never. Raise it for ESM-2 3B on a slow CPU.")
@click.option("--min-score", type=click.FloatRange(min=0, max=1), default=0.5, show_default=True,
              help="Call a sequence 'virus' when its virus_score (mean chunk score) is at least this. "
                   "Changing it on a finished run only rewrites the tables.")
@click.option("--min-length", type=click.IntRange(min=0), default=0, show_default=True, metavar="BP",
              help="Do not score records shorter than this (status too_short). Raising it on a finished run "
                   "recomputes nothing; lowering it computes only the newly included records.")
@click.option("--region-gap", type=click.IntRange(min=0), default=1, show_default=True, metavar="CHUNKS",
              help="Viral regions (viral_regions.tsv/.bed/.gff3): merge runs of virus chunks across at most this "
                   "many other chunks. Report-only, like --min-score.")
@click.option("--region-min-chunks", type=click.IntRange(min=1), default=2, show_default=True, metavar="CHUNKS",
              help="Virus chunks a viral region needs (a sequence with fewer chunks: all of them). Report-only.")
@click.option("--score-workers", type=click.IntRange(min=0), default=None, metavar="N",
              help="Processes that score shards while the GPUs embed the next ones; 0 = score in this process "
                   "after the embeddings [default: 0 on CPU, else the spare cores, at most 8]. Scores are the same "
                   "either way.")
def predict(inputs: tuple[str, ...], samples_file: str | None, output_dir: str, model_type: str, model_path: str | None, chunk_length: int | None,
            model_set: str, esm_model: str | None, dnabert_model: str | None, dnabert_revision: str | None,
            device: str, precision: str, batch_tokens: int | None, offline: bool, parallel: bool,
            gpus: str | None, workers: int, shard_size: int | None, force: bool, no_dashboard: bool,
            keep_features: bool, discard_features: bool, stall_timeout: float, allow_chunk_length: bool,
            min_score: float, min_length: int, compile_mode: str,
            score_workers: int | None, region_gap: int, region_min_chunks: int) -> None:
    """Score every chunk of INPUT (DNA FASTA or FASTQ, plain or gz/bz2/xz; '-' for stdin, or a named pipe)
    as virus or not. Several INPUTs (or --samples FILE) are samples of one run: each gets
    OUTPUT_DIR/<sample>/ (the file name without FASTA/FASTQ and compression suffixes) with the
    files listed below, and OUTPUT_DIR gets samples_summary.tsv and run_summary.json.

    Writes in OUTPUT_DIR: prediction_results.txt (per frame),
    prediction_results_highestscore.csv (per chunk), chunk_scores.tsv (per
    chunk, with its chunk score), contig_summary.tsv (per input sequence, with
    its virus_score and call), viral_contigs.fa (the sequences called virus),
    viral_regions.tsv/.bed/.gff3 (runs of virus chunks), run_summary.json,
    virnucpro_*mqc.json (MultiQC) and virnucpro.log. Re-running the same command resumes an
    interrupted run (not for stdin or a pipe, which is read once).

    \b
    Examples:
      virnucpro predict contigs.fa -o results/
      virnucpro predict contigs.fa -o results/ --parallel --gpus 0,1,2,3
      virnucpro predict examples/example_contigs.fa -o demo/ --models demo
      virnucpro predict gut1.fa.gz gut2.fq.gz soil.fa -o many/   # many/gut1/, many/gut2/, many/soil/
    """
    from virnucpro.pipeline.many_samples import main_many
    from virnucpro.pipeline.prediction import PredictOptions, main
    from virnucpro.pipeline.report.samples import refuse_many_sample_dir
    from virnucpro.pipeline.run.samples import sample_list

    if not inputs and samples_file is None:
        raise click.UsageError("Missing argument 'INPUT...' (or --samples FILE)")
    samples = sample_list(inputs, samples_file) if len(inputs) != 1 or samples_file is not None else []
    options = PredictOptions(
        input_path=inputs[0] if len(inputs) == 1 and samples_file is None else "", output_dir=output_dir, model_type=int(model_type), model_path=model_path,
        chunk_length=chunk_length, esm_model=esm_model, dnabert_model=dnabert_model,
        dnabert_revision=dnabert_revision, models=model_set, device=device, precision=precision,
        batch_tokens=batch_tokens, offline=offline, shard_size=shard_size, parallel=parallel or gpus is not None,
        gpus=gpus, workers=workers, force=force, no_dashboard=no_dashboard, keep_features=keep_features,
        stall_timeout=stall_timeout, discard_features=discard_features, allow_chunk_length=allow_chunk_length,
        min_score=min_score, min_length=min_length, compile=compile_mode, score_workers=score_workers,
        region_gap=region_gap, region_min_chunks=region_min_chunks,
    )
    if samples:
        main_many(options, samples)
    else:
        refuse_many_sample_dir(output_dir, "a one-input predict")
        main(options)
