"""Errors a user can cause or fix, each with its own process exit code.

Anything raised as a :class:`VirnucproError` is reported by the CLI as one line
(``virnucpro: error: <message>``) with no traceback; the traceback still goes to
the log file. Everything else is a bug and exits with :data:`EXIT_FAILURE`.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INPUT = 3
EXIT_MODEL_UNAVAILABLE = 4
EXIT_SHARDS_FAILED = 5
EXIT_INTERRUPTED = 130

EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_FAILURE: "failure (a bug, or an error not covered below)",
    EXIT_USAGE: "usage error (bad option or argument)",
    EXIT_INPUT: "input error (unreadable or malformed input file)",
    EXIT_MODEL_UNAVAILABLE: "model not available (not cached and cannot be downloaded, or invalid)",
    EXIT_SHARDS_FAILED: "some shards failed (finished work kept, re-run to continue)",
    EXIT_INTERRUPTED: "interrupted (SIGINT/SIGTERM; finished work kept, re-run to continue)",
}


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


class ShardsFailedError(VirnucproError):
    """Some shards kept failing; finished shards are kept for a re-run."""

    exit_code = EXIT_SHARDS_FAILED


class DeviceSelectionError(VirnucproError):
    """Options that ask for devices this machine does not have, or that contradict each other."""

    exit_code = EXIT_USAGE


class GpuSelectionError(VirnucproError):
    """A ``--gpus`` value names no usable GPU (bad number, duplicate, absent device, no CUDA)."""

    exit_code = EXIT_USAGE


class PlotUsageError(VirnucproError):
    """``--ids`` names a sequence that is not in the run, or ``-o`` has an unknown extension."""

    exit_code = EXIT_USAGE
