"""``virnucpro models``: fetch the models into their caches and list what is cached."""

from __future__ import annotations

import sys
from typing import IO, TYPE_CHECKING

import click

from virnucpro.models.registry import DEFAULT_DNABERT_MODEL, DEFAULT_ESM_MODEL  # torch-free module

if TYPE_CHECKING:
    from virnucpro.models.inventory import CachedModel


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
@click.option(
    "--classifier-url",
    default=None,
    metavar="URL",
    help="Mirror of the published classifiers: a base URL (URL/500_model.pth) or a template with {model_type} "
    "(also $VIRNUCPRO_CLASSIFIER_URL). Its files must still have the published git blob ids.",
)
@click.option(
    "--esm-url",
    default=None,
    metavar="URL",
    help="Mirror of the ESM-2 files: a base URL holding NAME.pt and NAME-contact-regression.pt, or a template "
    "with {file} (also $VIRNUCPRO_ESM_URL). DNABERT-S mirrors are set with $HF_ENDPOINT.",
)
def download(
    kind: str, model_type: str | None, esm_model: str, dnabert_model: str, dnabert_revision: str | None,
    classifier_url: str | None, esm_url: str | None,
) -> None:
    """Fetch KIND (esm, dnabert, classifier or all) into the local caches.

    Already cached models are not fetched again. ESM-2 goes to
    $TORCH_HOME/hub/checkpoints, DNABERT-S to the Hugging Face cache ($HF_HOME),
    the classifiers to $VIRNUCPRO_CACHE/classifiers. The classifiers come from
    Li-Jing-1997/VirNucPro at a pinned commit and are kept only when their git
    blob ids match the published files; use --model-path in predict for others.

    A download cut short (lost connection, killed job) is kept as NAME.part and
    continued by the next one; transient failures are retried with growing pauses.
    """
    from virnucpro.models.registry import download as fetch

    fetch(
        kind,
        model_type=int(model_type) if model_type else None,
        esm_model=esm_model,
        dnabert_model=dnabert_model,
        dnabert_revision=dnabert_revision,
        classifier_url=classifier_url,
        esm_url=esm_url,
    )


@models.command(name="list")
def list_models() -> None:
    """List the cached models: kind, name, where, size and whether complete."""
    from virnucpro.models.inventory import list_cached

    print_cached(list_cached())


def print_cached(models: list[CachedModel], stream: IO[str] | None = None) -> None:
    """Show cached models: a rich table on a terminal, tab-separated lines otherwise."""
    from virnucpro.sizes import human_size

    out = stream if stream is not None else sys.stdout
    headers = ("kind", "name", "where", "size", "status")
    rows = [(m.kind, m.name, str(m.path), human_size(m.size_bytes), "complete" if m.complete else "incomplete") for m in models]
    if not getattr(out, "isatty", lambda: False)():
        out.write("\t".join(headers) + "\n")
        for row in rows:
            out.write("\t".join(row) + "\n")
        if not rows:
            out.write("# no cached models\n")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="cached models")
    for header in headers:
        table.add_column(header, overflow="fold")
    for row in rows:
        table.add_row(*row)
    Console(file=out).print(table if rows else "no cached models")
