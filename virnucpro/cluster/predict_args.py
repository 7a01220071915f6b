"""``predict`` options that the cluster commands take and pass on to every part's run.

The options are those of ``virnucpro predict`` itself (copied from its click
command, so the two never drift and a pasted ``predict`` command line is
accepted whole). Those a batch job decides on its own (:data:`IGNORED`: the
live dashboard, ``--force``, the GPUs of the allocation) are accepted, hidden
from ``--help``, never passed on, and a given one is named in a log note
(:func:`note_ignored`). The input and the output directory are the cluster
command's own argument and option.
"""

from __future__ import annotations

import copy
import logging
import os
import shlex
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import click

logger = logging.getLogger(__name__)

#: predict parameters that are the cluster command's own: its inputs (``--samples`` included:
#: each command declares its own, see :mod:`.samples`) and its output directory.
COMMAND_OWNED = frozenset({"input_path", "inputs", "samples_file", "output_dir"})
#: Options whose value may be a local path: made absolute, since jobs run elsewhere.
PATH_VALUED = frozenset({"model_path", "esm_model", "dnabert_model"})
#: Device options the engines set from the resources they request (``--gpus-per-part``).
DEVICE_OWNED = frozenset({"gpus", "parallel"})
#: predict options a batch job cannot use: accepted, not passed on, noted (option name -> why).
IGNORED: dict[str, str] = {
    "no_dashboard": "a batch job has no terminal: every part runs with --no-dashboard",
    "force": "jobs resume what finished parts left; remove the output directory to start over",
    "gpus": "each part uses the GPUs of its own job (--gpus-per-part)",
    "parallel": "each part runs one worker per GPU of its job (--gpus-per-part)",
}


def predict_params(exclude: Iterable[str] = ()) -> list[click.Option]:
    """Copies of ``virnucpro predict``'s options (minus the input, the output directory and
    ``exclude``); the :data:`IGNORED` ones are hidden from ``--help``."""
    from virnucpro.cli.predict import predict

    skip = COMMAND_OWNED | set(exclude)
    params = []
    for param in predict.params:
        if isinstance(param, click.Option) and param.name not in skip:
            param = copy.copy(param)
            if param.name in IGNORED:
                param.hidden = True
            params.append(param)
    return params


def note_ignored(values: Mapping[str, Any]) -> list[str]:
    """Log one note per :data:`IGNORED` option given in ``values``; returns their flags."""
    given = []
    for param in predict_params():
        name = param.name or ""
        if name in IGNORED and values.get(name) not in (None, False, param.default):
            flag = max(param.opts, key=len)
            logger.warning("%s is ignored: %s", flag, IGNORED[name])
            given.append(flag)
    return given


def with_predict_options(exclude: Iterable[str] = ()) -> Callable[[click.Command], click.Command]:
    """Decorator adding :func:`predict_params` to a click command (after its own options)."""

    def decorate(command: click.Command) -> click.Command:
        command.params.extend(predict_params(exclude))
        return command

    return decorate


def predict_argv(values: Mapping[str, Any], exclude: Iterable[str] = ()) -> list[str]:
    """The ``predict`` command-line arguments that reproduce ``values`` (non-default ones only;
    never the :data:`IGNORED` ones).

    Args:
        values: parameter name -> value, as click passed them to the command.
        exclude: more names to leave out.

    Returns:
        Arguments such as ``["--models", "demo", "--batch-tokens", "1"]``.
    """
    argv: list[str] = []
    for param in predict_params(exclude):
        name = param.name or ""
        if name not in values or name in IGNORED:
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
