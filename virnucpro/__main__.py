"""``python -m virnucpro`` and the ``virnucpro`` console script.

:func:`run` turns SIGTERM into an interruption before anything heavy is imported: the
commands install their own SIGINT/SIGTERM handlers only once they start (``predict``
after its imports, about half a second in), and a SIGTERM before that killed the
process outright (status -15 instead of the documented exit code 143). Once the command
has returned, stop signals are ignored: the outcome is decided.
"""

import signal
import sys


def _interrupt(signum: int, _frame: object) -> None:
    exc = KeyboardInterrupt(signal.Signals(signum).name)
    exc.signum = signum  # type: ignore[attr-defined]  # the CLI's exit code for it: 143 (errors.exit_code_for_signal)
    raise exc


def run() -> int:
    """Run the command line with SIGTERM raising a ``KeyboardInterrupt`` that carries ``signum``
    (as SIGINT raises one), so a stop at any moment exits with its documented code."""
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _interrupt)
    try:
        from virnucpro.cli import main
    except KeyboardInterrupt as exc:  # stopped while importing: nothing was done yet
        from virnucpro.errors import exit_code_for_signal

        print("virnucpro: interrupted", file=sys.stderr)
        return exit_code_for_signal(getattr(exc, "signum", None))
    code = main()
    # The command is over and its files are written. The interpreter's teardown (threads joined,
    # atexit, torch freed) can take a second, and Python resets its handlers to the default
    # during it: a stop signal then killed a finished run (status -15 or -2). Now it is ignored.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    return code


if __name__ == "__main__":
    sys.exit(run())
