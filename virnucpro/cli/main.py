"""Top-level ``virnucpro`` group, global options and the error-to-exit-code policy.

Subcommands live in their own modules and are imported only when invoked (see
``LAZY_COMMANDS``), so ``virnucpro --help`` and ``--version`` never import torch.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import sys
from collections.abc import Sequence
from typing import TextIO

import click

from virnucpro import __version__
from virnucpro.errors import (
    EXIT_CODES,
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    VirnucproError,
)
from virnucpro.log import LOGGER_NAME, add_log_file, reset_logging, setup_console_logging

# command name -> "module:attribute"; imported on first use.
LAZY_COMMANDS: dict[str, str] = {
    "translate": "virnucpro.cli.translate:translate",
    "predict": "virnucpro.cli.predict:predict",
    "models": "virnucpro.cli.models:models",
    "benchmark": "virnucpro.cli.benchmark:benchmark",
    "plot": "virnucpro.cli.plot:plot",
    "features": "virnucpro.cli.features:features",
    "doctor": "virnucpro.cli.doctor:doctor",
    "split": "virnucpro.cli.split:split",
    "merge": "virnucpro.cli.merge:merge",
    "workflow": "virnucpro.cli.workflow:workflow",
    "slurm": "virnucpro.cli.slurm:slurm",
}

_EPILOG = "\b\nExit codes:\n" + "\n".join(f"  {code:>3}  {text}" for code, text in EXIT_CODES.items())


class LazyGroup(click.Group):
    """A click group whose subcommands are imported only when needed."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(LAZY_COMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in LAZY_COMMANDS:
            module_name, attr = LAZY_COMMANDS[cmd_name].split(":")
            return getattr(importlib.import_module(module_name), attr)
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, epilog=_EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="virnucpro")
@click.option("-v", "--verbose", count=True, help="More detail on the console (repeatable).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors on the console.")
@click.option(
    "--log-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also write a full debug log (tracebacks included) to this file.",
)
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: bool, log_file: str | None) -> None:
    """Find viral sequences in DNA FASTA files (the VirNucPro method).

    Typical use: ``virnucpro predict contigs.fa -o results/``. Run
    ``virnucpro COMMAND --help`` for each command's options.
    """
    if verbose and quiet:
        raise click.UsageError("-v/--verbose and -q/--quiet cannot be used together")
    ctx.ensure_object(dict)
    ctx.obj["verbosity"] = -1 if quiet else verbose
    setup_console_logging(ctx.obj["verbosity"], stream=sys.stderr)
    if log_file:
        add_log_file(log_file)


def main(
    argv: Sequence[str] | None = None,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run the command line and return its exit code instead of exiting.

    Args:
        argv: arguments without the program name; ``sys.argv[1:]`` by default.
        stdout: stream for normal output (``sys.stdout`` by default).
        stderr: stream for messages and logs (``sys.stderr`` by default).

    Returns:
        The process exit code (see ``virnucpro --help``).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    logger = logging.getLogger(LOGGER_NAME)
    verbose = any(a in ("-v", "--verbose") or (a.startswith("-v") and set(a[1:]) == {"v"}) for a in args)
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            result = cli.main(args=args, prog_name="virnucpro", standalone_mode=False)
            return result if isinstance(result, int) else EXIT_OK
        except click.exceptions.Exit as exc:
            return exc.exit_code
        except click.Abort:
            click.echo("virnucpro: interrupted", err=True)
            return EXIT_INTERRUPTED
        except click.ClickException as exc:
            exc.show(file=err)
            return exc.exit_code if exc.exit_code else EXIT_USAGE
        except VirnucproError as exc:
            logger.debug("error details", exc_info=True)
            click.echo(f"virnucpro: error: {exc}", err=True)
            return exc.exit_code
        except KeyboardInterrupt:
            logger.debug("interrupted", exc_info=True)
            click.echo("virnucpro: interrupted; finished work is kept, re-run to continue", err=True)
            return EXIT_INTERRUPTED
        except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, full log
            logger.debug("unexpected error", exc_info=True)
            message = f"virnucpro: internal error: {type(exc).__name__}: {exc}"
            click.echo(message, err=True)
            if verbose:
                import traceback

                traceback.print_exc(file=err)
            else:
                click.echo("(run with -v or see the log file for the traceback)", err=True)
            return EXIT_FAILURE
        finally:
            reset_logging()
