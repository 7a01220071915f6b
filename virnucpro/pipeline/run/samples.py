"""The samples of a many-sample ``predict``: their names and inputs, checked before any work.

``virnucpro predict A.fa B.fq.gz -o DIR`` and ``--samples FILE`` (``sample<TAB>path`` per
line) name several inputs; each becomes ``DIR/<sample>/``, a one-input run of its own.
A sample's name is its file name without the FASTA/FASTQ and compression suffixes
(:func:`~virnucpro.io.fasta_open.input_stem`) unless the TSV names it. Two samples of
one name, a missing file and a stream given twice are refused here, each in one line,
before anything is written.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from virnucpro.errors import InputError, UsageError
from virnucpro.io.fasta_open import input_stem, is_stream

#: Files a many-sample run writes at ``DIR`` itself: no sample may be named like one of them.
RUN_LEVEL_NAMES = frozenset({"samples_summary.tsv", "run_summary.json", "virnucpro.log", "work"})


@dataclass(frozen=True)
class Sample:
    """One input of a many-sample run and the name of its folder under ``DIR``."""

    name: str
    path: str


def sample_list(inputs: tuple[str, ...] | list[str], samples_file: str | None) -> list[Sample]:
    """The samples named on the command line, then those of ``samples_file``, checked.

    Raises:
        UsageError: no input, a bad line of ``samples_file``, an unusable or repeated name,
            or one stream given twice.
        InputError: an input file (or ``samples_file``) that does not exist.
    """
    samples = [Sample(input_stem(path), path) for path in inputs]
    if samples_file is not None:
        samples.extend(_read_samples_file(samples_file))
    if not samples:
        raise UsageError("no input given: name INPUT files or --samples FILE")
    seen: dict[str, str] = {}
    streams: set[str] = set()
    for sample in samples:
        _check_name(sample)
        if is_stream(sample.path):
            key = sample.path if sample.path == "-" else os.path.realpath(sample.path)
            if key in streams:
                raise UsageError(f"{sample.path}: a stream is read once; it cannot be given twice")
            streams.add(key)
        elif not Path(sample.path).exists():
            raise InputError(f"{sample.path}: no such file (sample {sample.name})")
        if sample.name in seen:
            raise UsageError(f"two samples are named {sample.name!r} ({seen[sample.name]} and {sample.path}); "
                             "name them in a --samples file (sample<TAB>path)")
        seen[sample.name] = sample.path
    return samples


def _check_name(sample: Sample) -> None:
    name = sample.name
    if not name or name in (".", "..") or "/" in name or name.startswith(".") or name in RUN_LEVEL_NAMES:
        raise UsageError(f"{name!r} cannot be a sample name (input {sample.path}): it is a folder under the "
                         "output directory, so no '/', no leading '.', and none of "
                         + ", ".join(sorted(RUN_LEVEL_NAMES)))


def _read_samples_file(path: str) -> list[Sample]:
    """``sample<TAB>path`` per line; blank lines and ``#`` comments skipped; a relative path is
    relative to the file's folder."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file (--samples)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the --samples file ({exc})") from None
    base = Path(path).parent
    samples = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.rstrip("\r").split("\t")
        if len(fields) != 2 or not fields[0].strip() or not fields[1].strip():
            raise UsageError(f"{path}, line {number}: expected 'sample<TAB>path', got {line.strip()!r}")
        name, where = fields[0].strip(), fields[1].strip()
        if where != "-" and not Path(where).is_absolute():
            where = str(base / where)
        samples.append(Sample(name, where))
    return samples
