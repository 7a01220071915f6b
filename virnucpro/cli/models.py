"""``virnucpro models``: fetch the models into their caches and list what is cached."""

from __future__ import annotations

import click

from virnucpro.models.registry import DEFAULT_DNABERT_MODEL, DEFAULT_ESM_MODEL  # torch-free module


@click.group()
def models() -> None:
    """Download the models (on a machine with network) or list the cached ones."""


@models.command()
@click.argument("kind", type=click.Choice(["esm", "dnabert", "classifier", "all"]), default="all")
@click.option(
    "--model-type",
    type=click.Choice(["300", "500"]),
    default=None,
    help="Classifier to fetch (chunk length it was trained for); both when omitted.",
)
@click.option("--esm-model", default=DEFAULT_ESM_MODEL, show_default=True, help="fair-esm ESM-2 model name.")
@click.option("--dnabert-model", default=DEFAULT_DNABERT_MODEL, show_default=True, help="Hugging Face repo id of DNABERT-S.")
@click.option("--dnabert-revision", default=None, help="Branch, tag or commit of the DNABERT-S repo (default: main).")
def download(kind: str, model_type: str | None, esm_model: str, dnabert_model: str, dnabert_revision: str | None) -> None:
    """Fetch KIND (esm, dnabert, classifier or all) into the local caches.

    Already cached models are not fetched again. ESM-2 goes to
    $TORCH_HOME/hub/checkpoints, DNABERT-S to the Hugging Face cache ($HF_HOME),
    the classifiers to $VIRNUCPRO_CACHE/classifiers.
    """
    from virnucpro.models.registry import download as fetch

    fetch(
        kind,
        model_type=int(model_type) if model_type else None,
        esm_model=esm_model,
        dnabert_model=dnabert_model,
        dnabert_revision=dnabert_revision,
    )


@models.command(name="list")
def list_models() -> None:
    """List the cached models: kind, name, where, size and whether complete."""
    from virnucpro.models.registry import list_cached, print_cached

    print_cached(list_cached())
