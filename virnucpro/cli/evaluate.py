"""``virnucpro evaluate``: metrics of a classifier on labelled sequences."""

from __future__ import annotations

from typing import Any

import click

from virnucpro.cli.train import feature_options, labelled_options, predict_options


@click.command()
@labelled_options
@click.option("-o", "--output-dir", required=True, type=click.Path(file_okay=False),
              help="Directory for evaluation.json and evaluation.tsv (created if missing).")
@click.option("-m", "--model-type", type=click.Choice(["300", "500"]), default="500", show_default=True,
              help="Published classifier to evaluate (when --model-path is not given).")
@click.option("--model-path", type=click.Path(), default=None,
              help="A classifier file or a MODEL_DIR from 'virnucpro train'.")
@click.option("--min-score", type=click.FloatRange(min=0, max=1), default=0.5, show_default=True,
              help="Per-sequence threshold on the sequence's virus score.")
@feature_options
def evaluate(positives: tuple[str, ...], negatives: tuple[str, ...], work_dir: str | None, genbank_cds: bool,
             output_dir: str, model_type: str, model_path: str | None, min_score: float, **features: Any) -> None:
    """Accuracy, precision, recall, F1, ROC AUC and confusion matrix per frame, chunk and sequence.

    Works for any classifier (the published ones included) on labelled
    inputs; the table is printed and written with the JSON to OUTPUT_DIR.

    \b
    Examples:
      virnucpro evaluate --positive viral.fa --negative host.fa --model-path my_model/ -o eval/
      virnucpro evaluate --positive viral.fa --negative host.fa -m 500 -o eval_published/
    """
    from virnucpro.models.classifier import classifier_file, read_model_card
    from virnucpro.training.evaluate import EvaluateOptions, main

    if features["chunk_length"] is None and model_path is not None:
        card = read_model_card(classifier_file(model_path)) or {}
        features["chunk_length"] = card.get("chunk_length")
    options = predict_options(features, model_path=model_path, model_type=int(model_type))
    main(EvaluateOptions(positives, negatives, output_dir, options, work_dir, genbank_cds, min_score))
