"""Errors a user can cause or fix, each with its own process exit code.

Anything raised as a :class:`VirnucproError` is reported by the CLI as one line
(``virnucpro: error: <message>``) with no traceback; the traceback still goes to
the log file. Anything else is an internal error (a bug) and also exits with
:data:`EXIT_FAILURE`, with the exception's name on the line.

:data:`EXIT_CODES` is the one list of exit codes: ``virnucpro --help`` prints it
and the README's "Exit codes" table must equal it (a test checks).
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INPUT = 3
EXIT_MODEL_UNAVAILABLE = 4
EXIT_SHARDS_FAILED = 5
EXIT_DIR_BUSY = 6
EXIT_SAMPLES_FAILED = 7
EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_TERMINATED = 143  # 128 + SIGTERM

EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_FAILURE: "results cannot be written (disk full, permission denied), or an internal error (see the log)",
    EXIT_USAGE: "usage error (bad option, or settings that differ from the run already in DIR)",
    EXIT_INPUT: "input error (missing, unreadable or malformed input file)",
    EXIT_MODEL_UNAVAILABLE: "model not available (not cached and cannot be downloaded, or not a valid model file)",
    EXIT_SHARDS_FAILED: "some shards failed (finished work kept, re-run to continue)",
    EXIT_DIR_BUSY: "another virnucpro run is using the output directory",
    EXIT_SAMPLES_FAILED: "some samples of a many-sample run failed (the others finished; see DIR/samples_summary.tsv)",
    EXIT_INTERRUPTED: "interrupted by SIGINT / Ctrl-C (finished work kept, re-run to continue)",
    EXIT_TERMINATED: "stopped by SIGTERM, e.g. a scheduler (finished work kept, re-run to continue)",
}


def exit_code_for_signal(signum: int | None) -> int:
    """The exit code of a run stopped by ``signum``: 143 for SIGTERM, 130 otherwise (SIGINT)."""
    import signal

    return EXIT_TERMINATED if signum == signal.SIGTERM else EXIT_INTERRUPTED


class VirnucproError(Exception):
    """Base class for errors reported to the user as a single line."""

    exit_code: int = EXIT_FAILURE


class InputError(VirnucproError):
    """The input file is missing, unreadable or malformed."""

    exit_code = EXIT_INPUT


class ModelNotAvailableError(VirnucproError):
    """A model is not cached, cannot be fetched, or its file is unusable."""

    exit_code = EXIT_MODEL_UNAVAILABLE


class UnsafeCheckpointError(ModelNotAvailableError):
    """A checkpoint asks the unpickler for code outside the allow-list."""


class RunConfigMismatchError(VirnucproError):
    """An output directory holds a run made with other parameters or input."""

    exit_code = EXIT_USAGE


class OutputError(VirnucproError):
    """Results cannot be written (disk full, permission denied, read-only)."""

    exit_code = EXIT_FAILURE


class UsageError(VirnucproError):
    """Options that cannot be meant (a chunk length the classifier cannot use...)."""

    exit_code = EXIT_USAGE


class OutputDirBusyError(VirnucproError):
    """Another run holds the output directory's lock."""

    exit_code = EXIT_DIR_BUSY


class ShardsFailedError(VirnucproError):
    """Some shards kept failing; finished shards are kept for a re-run."""

    exit_code = EXIT_SHARDS_FAILED


class SamplesFailedError(VirnucproError):
    """Some samples of a many-sample ``predict`` failed; the others finished."""

    exit_code = EXIT_SAMPLES_FAILED


class DeviceSelectionError(VirnucproError):
    """Options that ask for devices this machine does not have, or that contradict each other."""

    exit_code = EXIT_USAGE


class GpuSelectionError(VirnucproError):
    """A ``--gpus`` value names no usable GPU (bad number, duplicate, absent device, no CUDA)."""

    exit_code = EXIT_USAGE


class PlotUsageError(VirnucproError):
    """``--ids`` names a sequence that is not in the run, or ``-o`` has an unknown extension."""

    exit_code = EXIT_USAGE


class ClassifierMismatchError(ModelNotAvailableError):
    """A downloaded classifier is not the published file (its git blob id differs from the pin)."""


class MergeError(VirnucproError):
    """The runs given to ``merge`` cannot be joined (names the part and what is wrong)."""

    exit_code = EXIT_USAGE


class RecallError(VirnucproError):
    """A part cannot be called at the merged settings (names the part and what is wrong)."""

    exit_code = EXIT_USAGE


class SlurmError(VirnucproError):
    """sbatch is missing or refused a job."""

    exit_code = EXIT_FAILURE
