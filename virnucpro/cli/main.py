"""Top-level ``virnucpro`` group, global options and the error-to-exit-code policy.

Subcommands live in their own modules and are imported only when invoked (see
``LAZY_COMMANDS``), so ``virnucpro --help`` and ``--version`` never import torch.
The global options (``-v``, ``-q``, ``--log-file``) are added to every command
as it is loaded (:func:`add_global_options`), so they work after it too.
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
    EXIT_OK,
    EXIT_USAGE,
    VirnucproError,
    exit_code_for_signal,
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
    "train": "virnucpro.cli.train:train",
    "evaluate": "virnucpro.cli.evaluate:evaluate",
}

_EPILOG = "\b\nExit codes:\n" + "\n".join(f"  {code:>3}  {text}" for code, text in EXIT_CODES.items())


def _state(ctx: click.Context) -> dict:
    """The logging choices gathered so far, shared by the root and every subcommand context."""
    obj = ctx.find_root().ensure_object(dict)
    obj.setdefault("verbose", 0)
    obj.setdefault("quiet", False)
    return obj


def _apply_logging(ctx: click.Context) -> None:
    state = _state(ctx)
    if state["verbose"] and state["quiet"]:
        raise click.UsageError("-v/--verbose and -q/--quiet cannot be used together", ctx=ctx)
    state["verbosity"] = -1 if state["quiet"] else state["verbose"]
    setup_console_logging(state["verbosity"], stream=sys.stderr)


def _on_verbose(ctx: click.Context, _param: click.Parameter, value: int) -> None:
    if value:
        _state(ctx)["verbose"] += value
        _apply_logging(ctx)


def _on_quiet(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        _state(ctx)["quiet"] = True
        _apply_logging(ctx)


def _on_log_file(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value:
        add_log_file(value)


def global_options(*, root: bool = False) -> list[click.Option]:
    """Fresh ``-v/--verbose``, ``-q/--quiet`` and ``--log-file FILE`` options.

    They are accepted before the command (``virnucpro -v predict ...``) and after
    it (``virnucpro predict ... -v``), with the same meaning: ``-v`` counts add up
    wherever they are given, ``-q`` with ``-v`` is a usage error, every
    ``--log-file`` gets the full log. Values are applied as they are parsed, before
    the command runs, and never passed to the command's function.

    Args:
        root: the options of the top-level group (their help says "after" instead of "before").
    """
    also = "also accepted after the command" if root else "also accepted before the command"
    return [
        click.Option(["-v", "--verbose"], count=True, expose_value=False, callback=_on_verbose,
                     help=f"More detail on the console (repeatable: -vv); {also}."),
        click.Option(["-q", "--quiet"], is_flag=True, expose_value=False, callback=_on_quiet,
                     help=f"Only warnings and errors on the console; {also}."),
        click.Option(["--log-file"], type=click.Path(dir_okay=False), default=None, metavar="FILE",
                     expose_value=False, callback=_on_log_file,
                     help=f"Also write a full debug log (tracebacks included) to FILE; {also}."),
    ]


def add_global_options(command: click.Command) -> click.Command:
    """Give ``command`` (and, for a group, every subcommand, nested groups included) the
    global options, unless it defines an option of the same name itself. Idempotent."""
    if not getattr(command, "_virnucpro_global_options", False):
        taken = {opt for param in command.params for opt in getattr(param, "opts", ())}
        command.params.extend(o for o in global_options() if not taken.intersection(o.opts))
        command._virnucpro_global_options = True  # type: ignore[attr-defined]
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            add_global_options(sub)
    return command


class LazyGroup(click.Group):
    """A click group whose subcommands are imported only when needed (and get the global options)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(LAZY_COMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in LAZY_COMMANDS:
            module_name, attr = LAZY_COMMANDS[cmd_name].split(":")
            return add_global_options(getattr(importlib.import_module(module_name), attr))
        command = super().get_command(ctx, cmd_name)
        return add_global_options(command) if command is not None else None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The commands with their whole first sentence, wrapped (click cuts it to the width with '...')."""
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.short_help or summary_sentence(command.help or "")))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def summary_sentence(text: str) -> str:
    """The first sentence of a command's help (its first paragraph when that has no full stop)."""
    paragraph = " ".join(text.strip().split("\n\n", 1)[0].split())
    end = paragraph.find(". ")
    return paragraph if end < 0 else paragraph[: end + 1]


@click.group(cls=LazyGroup, epilog=_EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="virnucpro")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Find viral sequences in DNA FASTA or FASTQ files, plain or compressed (the VirNucPro method).

    Typical use: virnucpro predict contigs.fa -o results/. Run
    virnucpro COMMAND --help for each command's options. -v, -q and
    --log-file work before or after COMMAND.
    """
    _apply_logging(ctx)


cli.params.extend(global_options(root=True))


def click_error_line(exc: click.ClickException) -> str:
    """Click's option and argument errors in the one-line style of every other error, with the
    ``--help`` hint of the command that refused them (click shows three lines instead)."""
    message = " ".join(exc.format_message().split())
    ctx = getattr(exc, "ctx", None)
    if isinstance(exc, click.UsageError) and ctx is not None:
        message = f"{message.rstrip('.')}; see '{ctx.command_path} --help'"
    return f"virnucpro: error: {message}"


def _interrupted_line(signum: int | None, kept: bool) -> str:
    """The one console line of a run stopped by a signal (the pipeline logs its details to the log file)."""
    import signal

    name = f" ({signal.Signals(signum).name})" if signum is not None else ""
    tail = "; finished work is kept, re-run the same command to continue" if kept else ""
    return f"virnucpro: interrupted{name}{tail}"


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
        except click.Abort as exc:  # click turns KeyboardInterrupt (RunInterrupted too) into Abort
            signum = getattr(exc.__cause__ or exc.__context__, "signum", None)
            click.echo(_interrupted_line(signum, kept=signum is not None), err=True)
            return exit_code_for_signal(signum)
        except click.ClickException as exc:
            click.echo(click_error_line(exc), err=True)
            return exc.exit_code if exc.exit_code else EXIT_USAGE
        except VirnucproError as exc:
            logger.debug("error details", exc_info=True)
            click.echo(f"virnucpro: error: {exc}", err=True)
            return exc.exit_code
        except KeyboardInterrupt as exc:
            logger.debug("interrupted", exc_info=True)
            signum = getattr(exc, "signum", None)
            click.echo(_interrupted_line(signum, kept=True), err=True)
            return exit_code_for_signal(signum)
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
