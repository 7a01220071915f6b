"""The samples of a many-sample DIR as the commands that read a finished run see them.

``plot`` and ``features export`` act on every finished sample of a many-sample DIR
(``predict A B -o DIR``, or a cluster run's ``merge --samples``): the samples come from
``DIR/samples_summary.tsv`` (:mod:`.samples`, the marker of such a DIR), in its order.
A sample is *finished* when its row says ``ok`` and its folder holds a ``run_summary.json``
with status ``ok``; any other sample is skipped with one warning line that says why (its
``FAILED.txt`` line, or its status). ``--sample NAME`` picks one sample.

:func:`for_each_sample` runs a command's action on each sample and reports the ones that
fail the way ``predict`` does: the others go on, and the command ends with
:class:`~virnucpro.errors.SamplesFailedError` (exit 7), or with the samples' own error when
every sample failed alike.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from virnucpro.errors import InputError, SamplesFailedError, UsageError, VirnucproError
from virnucpro.pipeline.report.samples import FAILED_NAME, SAMPLES_SUMMARY_NAME, is_many_sample_dir

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class SampleFolder:
    """One sample of a many-sample DIR: its name, folder and why it is not finished (None: finished)."""

    name: str
    folder: Path
    unfinished: str | None = None


def list_samples(root: str | Path) -> list[SampleFolder]:
    """Every sample of the many-sample run at ``root``, in the order of its ``samples_summary.tsv``.

    Raises:
        UsageError: ``root`` is not a many-sample DIR.
        InputError: its ``samples_summary.tsv`` cannot be read.
    """
    root = Path(root)
    if not is_many_sample_dir(root):
        raise UsageError(f"{root} is not a many-sample run (no {SAMPLES_SUMMARY_NAME}); --sample needs one")
    table = root / SAMPLES_SUMMARY_NAME
    try:
        lines = table.read_text(encoding="utf-8").splitlines()
        header = lines[0].split("\t")
        name_at, status_at = header.index("sample"), header.index("status")
    except (OSError, UnicodeDecodeError, IndexError, ValueError) as exc:
        raise InputError(f"{table}: not a samples table ({exc})") from None
    samples = []
    for line in lines[1:]:
        fields = line.split("\t")
        if len(fields) != len(header) or not fields[name_at]:
            raise InputError(f"{table}: malformed line {line!r}")
        name, status = fields[name_at], fields[status_at]
        folder = root / name
        samples.append(SampleFolder(name, folder, _why_unfinished(folder, status)))
    return samples


def _why_unfinished(folder: Path, status: str) -> str | None:
    failed = folder / FAILED_NAME
    if failed.is_file():
        reason = failed.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        return f"failed: {reason[0] if reason else 'see ' + str(failed)}"
    if status != "ok":
        return {"pending": "not run yet", "interrupted": "interrupted (re-run the command to finish it)"}.get(
            status, status)
    try:
        summary = json.loads((folder / "run_summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return f"no {folder / 'run_summary.json'}"
    if not isinstance(summary, dict) or summary.get("status") != "ok":
        return f"its run_summary.json says {summary.get('status') if isinstance(summary, dict) else 'nothing'}"
    return None


def pick_samples(root: str | Path, only: str | None, command: str) -> list[SampleFolder]:
    """The finished samples ``command`` acts on (all of them, or ``only``); each skipped one is
    one warning line.

    Raises:
        UsageError: ``root`` is not a many-sample DIR, or has no sample ``only``.
        InputError: ``only`` did not finish, or no sample did.
    """
    samples = list_samples(root)
    if only is not None:
        chosen = [s for s in samples if s.name == only]
        if not chosen:
            raise UsageError(f"{root} has no sample {only!r} (samples: {', '.join(s.name for s in samples)})")
        if chosen[0].unfinished:
            raise InputError(f"{chosen[0].folder}: sample {only} did not finish ({chosen[0].unfinished})")
        return chosen
    for sample in samples:
        if sample.unfinished:
            logger.warning("%s: sample %s skipped: %s", command, sample.name, sample.unfinished)
    finished = [s for s in samples if not s.unfinished]
    if not finished:
        raise InputError(f"{root}: no finished sample to {command} (see {Path(root) / SAMPLES_SUMMARY_NAME})")
    return finished


def for_each_sample(samples: Sequence[SampleFolder], action: Callable[[SampleFolder], T], command: str) -> list[T]:
    """``action`` on every sample; a sample whose action fails is logged and the others go on.

    Raises:
        VirnucproError: every sample failed alike (that error), or
        SamplesFailedError: some samples failed (the others are done).
    """
    results: list[T] = []
    failed: list[tuple[str, VirnucproError]] = []
    for sample in samples:
        try:
            results.append(action(sample))
        except VirnucproError as exc:
            logger.error("%s: sample %s failed: %s", command, sample.name, exc)
            failed.append((sample.name, exc))
    if failed and len(failed) == len(samples) and len({e.exit_code for _, e in failed}) == 1:
        raise failed[-1][1]
    if failed:
        raise SamplesFailedError(f"{command}: {len(failed)} of {len(samples)} samples failed "
                                 f"({', '.join(name for name, _ in failed)}); the others are done")
    return results
