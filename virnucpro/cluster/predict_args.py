"""``predict`` options that the cluster commands take and pass on to every part's run.

The options are those of ``virnucpro predict`` itself (copied from its click
command, so the two never drift); those a job sets on its own (the input, the
output directory, the live dashboard, the GPUs of the allocation) are left out.
"""

from __future__ import annotations

import copy
import os
import shlex
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import click

#: predict parameters a cluster job decides itself.
JOB_OWNED = frozenset({"input_path", "output_dir", "force", "no_dashboard"})
#: Options whose value may be a local path: made absolute, since jobs run elsewhere.
PATH_VALUED = frozenset({"model_path", "esm_model", "dnabert_model"})
#: Device options the engines set from the resources they request (``--gpus-per-part``).
DEVICE_OWNED = frozenset({"gpus", "parallel"})


def predict_params(exclude: Iterable[str] = ()) -> list[click.Option]:
    """Copies of ``virnucpro predict``'s options, minus the job-owned ones and ``exclude``."""
    from virnucpro.cli.predict import predict

    skip = JOB_OWNED | set(exclude)
    return [copy.copy(p) for p in predict.params if isinstance(p, click.Option) and p.name not in skip]


def with_predict_options(exclude: Iterable[str] = ()) -> Callable[[click.Command], click.Command]:
    """Decorator adding :func:`predict_params` to a click command (after its own options)."""

    def decorate(command: click.Command) -> click.Command:
        command.params.extend(predict_params(exclude))
        return command

    return decorate


def predict_argv(values: Mapping[str, Any], exclude: Iterable[str] = ()) -> list[str]:
    """The ``predict`` command-line arguments that reproduce ``values`` (non-default ones only).

    Args:
        values: parameter name -> value, as click passed them to the command.
        exclude: names to leave out.

    Returns:
        Arguments such as ``["--models", "demo", "--batch-tokens", "1"]``.
    """
    argv: list[str] = []
    for param in predict_params(exclude):
        name = param.name or ""
        if name not in values:
            continue
        value = values[name]
        flag = max(param.opts, key=len)
        if param.is_flag:
            if value:
                argv.append(flag)
            continue
        if value is None or value == param.default:
            continue
        text = str(value)
        if name in PATH_VALUED and os.path.exists(text):
            text = os.path.abspath(text)
        argv += [flag, text]
    return argv


def shell_join(argv: Iterable[str]) -> str:
    """Arguments quoted for a bash script."""
    return " ".join(shlex.quote(a) for a in argv)
