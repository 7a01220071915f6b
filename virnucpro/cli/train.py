"""``virnucpro train``: train the VirNucPro MLP on your own labelled sequences."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from virnucpro.cli.predict import COMPILE_CHOICES

_PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def labelled_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--positive`` / ``--negative`` (repeatable), ``--work-dir`` and ``--genbank-cds``."""
    for option in reversed([
        click.option("--positive", "positives", multiple=True, metavar="FILE",
                     help="Viral sequences (FASTA; GenBank with --genbank-cds); repeatable."),
        click.option("--negative", "negatives", multiple=True, metavar="FILE",
                     help="Non-viral (host) sequences; repeatable."),
        click.option("--work-dir", type=click.Path(file_okay=False), default=None,
                     help="Where each input's features are kept and reused [default: OUTPUT/work]."),
        click.option("--genbank-cds", is_flag=True,
                     help="Inputs are GenBank files: keep only chunks without ambiguous bases and frames "
                          "whose protein is part of an annotated CDS (the published data preparation)."),
    ]):
        func = option(func)
    return func


def feature_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The model and device options of ``predict`` that decide how features are made."""
    for option in reversed([
        click.option("-c", "--chunk-length", type=click.IntRange(min=3), default=None,
                     help="Chunk length in bp [default: 500; for evaluate, the MODEL_DIR's, else the model type]."),
        click.option("--models", "model_set", type=click.Choice(["published", "demo"]), default="published",
                     show_default=True, help="'demo': tiny random embedders built locally (for trying it out)."),
        click.option("--esm-model", default=None, metavar="NAME|FILE", help="ESM-2 model name or local .pt file."),
        click.option("--dnabert-model", default=None, metavar="HUB_ID|DIR", help="DNABERT-S hub id or directory."),
        click.option("--dnabert-revision", default=None, metavar="REV", help="Hub revision of DNABERT-S."),
        click.option("--device", default="auto", show_default=True, metavar="auto|cpu|cuda|cuda:N",
                     help="Device for a single-process run."),
        click.option("--precision", type=click.Choice(_PRECISIONS), default="auto", show_default=True,
                     help="Embedding precision (as predict)."),
        click.option("--batch-tokens", type=click.IntRange(min=1), default=None, help="Padded tokens per model batch."),
        click.option("--compile", "compile_mode", type=click.Choice(COMPILE_CHOICES), default="auto",
                     show_default=True, help="torch.compile the embedding layers (as predict; speed only)."),
        click.option("--offline", is_flag=True, help="Never touch the network."),
        click.option("--parallel", is_flag=True, help="One embedding worker per visible GPU."),
        click.option("--gpus", default=None, metavar="0,1,...", help="GPU ordinals to use (implies --parallel)."),
        click.option("--workers", type=click.IntRange(min=0), default=0, show_default=True,
                     help="CPU embedding worker processes; 0 = in this process."),
        click.option("--shard-size", type=click.IntRange(min=1), default=10_000, show_default=True,
                     help="Frames per work shard."),
        click.option("--no-dashboard", is_flag=True, help="Plain progress lines instead of live views."),
    ]):
        func = option(func)
    return func


def predict_options(values: dict[str, Any], *, model_path: str | None = None, model_type: int = 500) -> Any:
    """The ``PredictOptions`` that make features as ``predict`` would (no input or output of its own)."""
    from virnucpro.pipeline.run.options import PredictOptions

    return PredictOptions(
        input_path="", output_dir="", model_type=model_type, model_path=model_path,
        chunk_length=values["chunk_length"], esm_model=values["esm_model"], dnabert_model=values["dnabert_model"],
        dnabert_revision=values["dnabert_revision"], models=values["model_set"], device=values["device"],
        precision=values["precision"], batch_tokens=values["batch_tokens"], offline=values["offline"],
        shard_size=values["shard_size"], parallel=values["parallel"] or values["gpus"] is not None,
        gpus=values["gpus"], workers=values["workers"], no_dashboard=values["no_dashboard"],
        compile=values["compile_mode"],
    )


@click.command()
@labelled_options
@click.option("-o", "--output-dir", "model_dir", required=True, type=click.Path(file_okay=False),
              help="MODEL_DIR: model.safetensors, model.json, metrics.json (created if missing).")
@feature_options
@click.option("--epochs", type=click.IntRange(min=1), default=200, show_default=True, help="Most epochs.")
@click.option("--patience", type=click.IntRange(min=1), default=5, show_default=True,
              help="Stop after this many epochs without a better held-out loss.")
@click.option("--lr", "learning_rate", type=click.FloatRange(min=0, min_open=True), default=2e-4, show_default=True,
              help="SGD learning rate (momentum 0.9, x0.85 every 10 epochs).")
@click.option("--batch-size", type=click.IntRange(min=2), default=32, show_default=True, help="Frames per batch.")
@click.option("--val-fraction", type=click.FloatRange(min=0, max=1, min_open=True, max_open=True), default=0.1,
              show_default=True, help="Fraction held out (per class) for early stopping and metrics.json.")
@click.option("--split-by", type=click.Choice(["frame", "chunk", "sequence"]), default="frame", show_default=True,
              help="What the held-out split keeps together: frames (published), chunks, or whole sequences.")
@click.option("--class-weight", type=click.Choice(["none", "balanced"]), default="none", show_default=True,
              help="'balanced' weights the loss by inverse class frequency.")
@click.option("--seed", type=int, default=42, show_default=True, help="Seed of the split, batch order and weights.")
def train(positives: tuple[str, ...], negatives: tuple[str, ...], work_dir: str | None, genbank_cds: bool,
          model_dir: str, epochs: int, patience: int, learning_rate: float, batch_size: int, val_fraction: float,
          split_by: str, class_weight: str, seed: int, **features: Any) -> None:
    """Train a classifier on --positive (viral) and --negative (host) sequences.

    Features are made exactly as 'predict' makes them and kept per input
    (OUTPUT/work or --work-dir), so a second run with other training options
    embeds nothing. Use the result with 'predict --model-path MODEL_DIR'.

    \b
    Examples:
      virnucpro train --positive viral.fa --negative host.fa -c 500 -o my_model/
      virnucpro predict contigs.fa -o out/ --model-path my_model/ -c 500
    """
    from virnucpro.training.recipe import Recipe
    from virnucpro.training.train import TrainOptions, main

    recipe = Recipe(learning_rate=learning_rate, batch_size=batch_size, max_epochs=epochs, patience=patience,
                    validation_fraction=val_fraction, split_by=split_by, class_weight=class_weight, seed=seed)
    main(TrainOptions(positives, negatives, model_dir, predict_options(features), recipe, work_dir, genbank_cds))
