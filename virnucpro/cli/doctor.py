"""``virnucpro doctor``: check this machine and the models before a long ``predict`` run."""

from __future__ import annotations

import click


@click.command()
@click.option("--offline", is_flag=True, help="Do not probe the network; models must be cached or local.")
@click.option("--models", "model_set", type=click.Choice(["published", "demo"]), default="published", show_default=True,
              help="Model set to check, as for predict.")
@click.option("-m", "--model-type", type=click.Choice(["300", "500"]), default="500", show_default=True,
              help="Published classifier to check.")
@click.option("--model-path", default=None, metavar="FILE", help="Check this classifier file instead.")
@click.option("--esm-model", default=None, metavar="NAME|FILE", help="Check this ESM-2 model instead of the default.")
@click.option("--dnabert-model", default=None, metavar="HUB_ID|DIR", help="Check this DNABERT-S model instead.")
@click.option("--dnabert-revision", default=None, metavar="REV", help="Hub revision of DNABERT-S.")
def doctor(offline: bool, model_set: str, model_type: str, model_path: str | None, esm_model: str | None,
           dnabert_model: str | None, dnabert_revision: str | None) -> None:
    """Check Python, torch, GPUs, CPU, model caches, network and optional extras.

    Then check that `predict` with the same model options could run: each
    model cached, or downloadable from a reachable source. Exits 4 (model not
    available) when it could not, naming each missing model and the fix; 1 for
    another failed check (torch cannot be imported); 0 otherwise. The network probes take at most a few seconds (skipped with --offline).

    \b
    Examples:
      virnucpro doctor
      virnucpro doctor --offline --esm-model esm2_t36_3B_UR50D
      virnucpro doctor --models demo
    """
    from virnucpro.doctor import Configuration, print_report, run_doctor
    from virnucpro.errors import ModelNotAvailableError

    if model_set == "demo" and (esm_model or dnabert_model or model_path):
        raise click.UsageError("--models demo cannot be combined with --esm-model, --dnabert-model or --model-path")
    config = Configuration(models=model_set, model_type=int(model_type), model_path=model_path,
                           esm_model=esm_model, dnabert_model=dnabert_model, dnabert_revision=dnabert_revision)
    report = run_doctor(config, offline=offline)
    print_report(report)
    failures = [c for c in report.failures if c.section == "predict"]
    if failures:
        more = f" (and {len(failures) - 1} more above)" if len(failures) > 1 else ""
        raise ModelNotAvailableError(f"predict cannot run as configured: {failures[0].name}: "
                                     f"{failures[0].detail}{more}")
    if report.failures:
        from virnucpro.errors import VirnucproError

        first = report.failures[0]
        raise VirnucproError(f"{len(report.failures)} problem(s) above, first: {first.name}: {first.detail}")
