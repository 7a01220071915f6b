"""``virnucpro benchmark``: engine speed, MFU, speed-up over the published method, precision drift."""

from __future__ import annotations

import sys

import click


@click.command()
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
              help="Also write every figure to this JSON file.")
@click.option("--device", default="auto", show_default=True, metavar="auto|cpu|cuda|cuda:N",
              help="Device for the models.")
@click.option("--size", type=click.Choice(["auto", "small", "full"]), default="auto", show_default=True,
              help="full = ESM-2 3B and DNABERT-S shapes; small = few layers, narrow (CI, CPU). "
                   "auto = full on CUDA, small otherwise.")
@click.option("--frames", type=click.IntRange(min=1), default=None,
              help="Synthetic frames per chunk length [default: 1000 full, 24 small].")
@click.option("--chunk-lengths", default="300,500", show_default=True, metavar="C1,C2",
              help="Chunk lengths the synthetic frames are shaped like.")
@click.option("--precision", "precision_spec", default="auto", show_default=True, metavar="LIST",
              help="Comma-separated fp32,bf16,fp16 (fp32 always runs: it is the reference). "
                   "auto = fp32,bf16 (fp16 on GPUs without BF16); with --precision-check: bf16,fp16 on "
                   "GPUs, bf16 on the CPU.")
@click.option("--skip-baseline", is_flag=True, help="Do not run the published method (no speed-ups).")
@click.option("--batch-tokens", type=click.IntRange(min=1), default=None,
              help="Padded-token budget of our engines [default: sized to the device].")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of weights, frames and sampling.")
@click.option("--precision-check", is_flag=True,
              help="Instead: compare BF16/FP16 with FP32 on a sample of YOUR input with the real models.")
@click.option("--input", "input_path", default=None, metavar="FASTA",
              help="DNA FASTA for --precision-check.")
@click.option("--sample", type=click.IntRange(min=1), default=500, show_default=True,
              help="Frames sampled from --input for --precision-check.")
@click.option("-m", "--model-type", type=click.Choice(["300", "500"]), default="500", show_default=True,
              help="--precision-check: published classifier and chunk length.")
@click.option("--model-path", type=click.Path(dir_okay=False), default=None,
              help="--precision-check: a classifier file instead of the published one.")
@click.option("--models", "model_set", type=click.Choice(["published", "demo"]), default="published",
              show_default=True,
              help="--precision-check: 'demo' uses tiny random models (meaningless scores).")
@click.option("--esm-model", default=None, metavar="NAME|FILE", help="--precision-check: ESM-2 model.")
@click.option("--dnabert-model", default=None, metavar="HUB_ID|DIR",
              help="--precision-check: DNABERT-S model.")
@click.option("--dnabert-revision", default=None, metavar="REV",
              help="--precision-check: DNABERT-S revision.")
@click.option("--offline", is_flag=True, help="--precision-check: use cached or local models only.")
def benchmark(json_path: str | None, device: str, size: str, frames: int | None, chunk_lengths: str,
              precision_spec: str, skip_baseline: bool, batch_tokens: int | None, seed: int,
              precision_check: bool, input_path: str | None, sample: int, model_type: str,
              model_path: str | None, model_set: str, esm_model: str | None, dnabert_model: str | None,
              dnabert_revision: str | None, offline: bool) -> None:
    """Measure the embedding engines and the CPU stages, or check precision on your own input.

    Default mode needs no model download: real-size architectures with random
    weights run on synthetic frames shaped like 300 and 500 bp chunks, next to
    the published method on the same frames. Prints tables; --json writes the
    same figures.

    \b
    Examples:
      virnucpro benchmark --size full --json bench.json        # on a GPU
      virnucpro benchmark                                      # CPU: small size
      virnucpro benchmark --precision-check --input contigs.fa --sample 500
    """
    from virnucpro.benchmark.run import parse_chunk_lengths, parse_precisions

    try:
        precisions = parse_precisions(precision_spec)
        lengths = parse_chunk_lengths(chunk_lengths)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    command = ["virnucpro", *sys.argv[1:]]
    if precision_check:
        if not input_path:
            raise click.UsageError("--precision-check needs --input FASTA")
        from virnucpro.benchmark.precision_check import PrecisionCheckOptions, run_precision_check
        from virnucpro.benchmark.report import render_precision_check, write_json

        options = PrecisionCheckOptions(
            input_path=input_path, sample=sample, model_type=int(model_type), model_path=model_path,
            models=model_set, esm_model=esm_model, dnabert_model=dnabert_model,
            dnabert_revision=dnabert_revision, offline=offline, device=device, precisions=precisions,
            batch_tokens=batch_tokens, seed=seed, command=command,
        )
        result = _usage_errors(run_precision_check, options)
        render_precision_check(result)
    else:
        if input_path:
            raise click.UsageError("--input is only used with --precision-check")
        from virnucpro.benchmark.report import render, write_json
        from virnucpro.benchmark.run import BenchmarkOptions, run_benchmark

        bench_options = BenchmarkOptions(
            device=device, size=size, frames=frames, chunk_lengths=lengths, precisions=precisions,
            skip_baseline=skip_baseline, batch_tokens=batch_tokens, seed=seed, command=command,
        )
        result = _usage_errors(run_benchmark, bench_options)
        render(result)
    if json_path:
        write_json(result, json_path)
        click.echo(f"wrote {json_path}", err=True)


def _usage_errors(function, options):
    """Run ``function(options)``; a ValueError (bad device, precision...) becomes a usage error."""
    try:
        return function(options)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
