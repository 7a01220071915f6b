"""``virnucpro split``: N gzip FASTA parts of one input, contiguous and balanced by bases.

Layout of a parts directory::

    PARTS_DIR/
      manifest.json      input sha256 and size; per part: file, records, bases, sha256
      part-0001.fa.gz    records 1..k of the input, in input order
      part-0002.fa.gz    ...

Rules:

* Parts are contiguous in input order and a record is never cut. Each part
  aims at the bases still to place divided by the parts still to fill; a
  record joins the current part while its midpoint falls within that target.
  Parts hold about ``total / N`` bases and one huge record makes only its own
  part larger. When every record is empty the record count is balanced instead.
* More parts than records is allowed: the extra parts are empty gzip files
  (``records: 0`` in the manifest) that have nothing to predict.
* Output is deterministic: gzip with ``mtime=0`` and no file name in the
  header, records written one per header line (the header line kept as read,
  the sequence unwrapped, whitespace removed), so the same input and N give
  byte-identical parts and manifest on one installation. Parts are compressed
  by isal (level 1, ~5x faster than zlib's level 1 and ~5% smaller) when it is
  installed, else by zlib: the two give different compressed bytes for the
  same decompressed content, which is identical either way (as across zlib
  builds: zlib-ng, Cloudflare's), so a manifest's sha256 describes the parts
  it was written with, and a re-run keeps parts that still match it.
* Memory is flat: two streaming passes, the first counts bases, the second
  writes. Standard input cannot be read twice, so ``-`` is first copied
  (spooled) into ``PARTS_DIR/.stdin-spool`` (disk, not memory), which is
  removed at the end.
* Running the same split again with a manifest that already matches (same
  input sha256, same N, every part file present with its recorded sha256)
  rewrites nothing, so a resubmitted cluster job skips the work.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import re
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from virnucpro import __version__
from virnucpro.errors import InputError, OutputError
from virnucpro.hashing import file_sha256
from virnucpro.io.fasta import FastaBytesRecord, FastaWriter, display_name, read_fasta_bytes
from virnucpro.io.fasta_open import gzip_module
from virnucpro.pipeline.checkpoint import atomic_write, atomic_write_text

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1
SPOOL_NAME = ".stdin-spool"
#: Level 1: parts are intermediate files; with zlib, on DNA, ~10x faster than level 6 for ~13% more bytes
#: (isal's level 1: 5x faster again, and 5% smaller than zlib's).
GZIP_LEVEL = 1
_WRITE_BUFFER = 1 << 20
_PART_RE = re.compile(r"^part-\d{4,}\.fa\.gz$")


def part_name(index: int) -> str:
    """``part-0001`` for part 1 (1-based, zero-padded so names sort in order)."""
    return f"part-{index:04d}"


def part_file_name(index: int) -> str:
    """File name of part ``index``: ``part-0001.fa.gz``."""
    return f"{part_name(index)}.fa.gz"


@dataclass(frozen=True)
class PartInfo:
    """One part as recorded in the manifest."""

    file: str
    records: int
    bases: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    """What ``manifest.json`` holds: the input's identity and every part."""

    input: str
    input_sha256: str
    input_size: int
    parts: list[PartInfo]
    total_records: int = 0
    total_bases: int = 0
    version: int = MANIFEST_VERSION
    virnucpro_version: str = __version__
    balanced_by: str = "bases"
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        """The manifest as JSON text (stable key order, so equal manifests are equal bytes)."""
        data = asdict(self)
        if not data["extra"]:
            del data["extra"]
        return json.dumps(data, indent=1, sort_keys=True) + "\n"


def read_manifest(path: str | Path) -> Manifest:
    """Parse a ``manifest.json`` written by :func:`split_fasta`.

    Raises:
        InputError: the file is missing, unreadable or not a virnucpro manifest (one line naming it).
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: no such manifest (run 'virnucpro split' first)") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read the manifest ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise InputError(f"{path}: not a valid manifest ({exc})") from None
    try:
        if data.get("version") != MANIFEST_VERSION:
            raise ValueError(f"unknown manifest version {data.get('version')!r}")
        parts = [PartInfo(str(p["file"]), int(p["records"]), int(p["bases"]), str(p["sha256"])) for p in data["parts"]]
        return Manifest(
            input=str(data["input"]), input_sha256=str(data["input_sha256"]), input_size=int(data["input_size"]),
            parts=parts, total_records=int(data.get("total_records", 0)), total_bases=int(data.get("total_bases", 0)),
            virnucpro_version=str(data.get("virnucpro_version", "")), balanced_by=str(data.get("balanced_by", "bases")),
        )
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: not a virnucpro split manifest ({type(exc).__name__}: {exc})") from None


class _HashingWriter:
    """A binary sink that forwards writes and hashes them (sha256 of the bytes on disk)."""

    def __init__(self, handle: IO[bytes]) -> None:
        self._handle = handle
        self.digest = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return self._handle.write(data)

    def flush(self) -> None:
        self._handle.flush()


def _spool_stdin(target: Path) -> None:
    """Copy standard input to ``target`` in 1 MiB blocks (stdin cannot be read twice)."""
    source = sys.stdin.buffer
    try:
        with open(target, "wb") as handle:
            shutil.copyfileobj(source, handle, 1 << 20)
    except OSError as exc:
        raise OutputError(f"cannot spool standard input to {target}: {exc.strerror or exc}") from None


def count_records(path: str | Path) -> tuple[int, int]:
    """(records, bases) of a FASTA/FASTQ input, read once and every record validated: split's
    first pass (also what the gzip benchmark times as "reading records")."""
    records = bases = 0
    with read_fasta_bytes(path) as reader:
        for record in reader:
            records += 1
            bases += len(record.sequence)
    return records, bases


def _assignments(path: str | Path, n_parts: int, total_records: int, total_bases: int) -> Iterator[tuple[int, FastaBytesRecord]]:
    """Second pass: each record with its 0-based part (non-decreasing: parts are contiguous).

    A part's target is what is left to place divided by the parts left, set
    when the part starts. A record joins the current part when the part is
    still empty or the record's midpoint falls within the target; otherwise
    the next part starts with it. So one huge record fills its own part and
    the rest is shared evenly by the others.
    """
    by_bases = total_bases > 0
    remaining = total_bases if by_bases else total_records
    part, in_part = 0, 0
    target = remaining / n_parts
    with read_fasta_bytes(path) as reader:
        for record in reader:
            weight = len(record.sequence) if by_bases else 1
            if in_part and part < n_parts - 1 and in_part + weight / 2 > target:
                part += 1
                in_part = 0
                target = remaining / (n_parts - part)
            in_part += weight
            remaining -= weight
            yield part, record


def _manifest_matches(out_dir: Path, wanted_sha: str, wanted_size: int, n_parts: int) -> Manifest | None:
    """The existing manifest when it is for this input and N and every part file verifies."""
    path = out_dir / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        manifest = read_manifest(path)
    except InputError:
        return None
    if (manifest.input_sha256, manifest.input_size, len(manifest.parts)) != (wanted_sha, wanted_size, n_parts):
        return None
    for part in manifest.parts:
        target = out_dir / part.file
        if not target.is_file() or file_sha256(target, use_cache=False) != part.sha256:
            return None
    return manifest


def split_fasta(input_path: str, n_parts: int, out_dir: str | Path) -> Manifest:
    """Split ``input_path`` (a FASTA file, plain or compressed, or ``-``) into ``n_parts`` parts.

    Args:
        input_path: the input; ``-`` reads standard input (spooled to disk first).
        n_parts: number of parts, at least 1.
        out_dir: the parts directory (created if missing).

    Returns:
        The manifest that was written (or that already matched).

    Raises:
        InputError: the input is missing or malformed (one line naming it).
        OutputError: the parts cannot be written.
    """
    if n_parts < 1:
        raise ValueError("n_parts must be at least 1")
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create directory {out}: {exc.strerror or exc}") from None
    began = time.monotonic()
    spool = out / SPOOL_NAME
    source: str | Path = input_path
    try:
        if input_path == "-":
            _spool_stdin(spool)
            source = spool
        elif not Path(input_path).is_file():
            read_fasta_bytes(input_path).close()  # the reader's own one-line error for a missing path
            raise InputError(f"{input_path}: not a regular file (use '-' to read a stream from stdin)")
        input_sha = file_sha256(source, use_cache=False)
        input_size = Path(source).stat().st_size
        existing = _manifest_matches(out, input_sha, input_size, n_parts)
        if existing is not None:
            logger.info("split: %s already holds the %d part(s) of this input; nothing to do", out, n_parts)
            return existing
        total_records, total_bases = count_records(source)
        parts = _write_parts(source, n_parts, out, total_records, total_bases)
    finally:
        with contextlib.suppress(FileNotFoundError):
            spool.unlink()
    manifest = Manifest(
        input=display_name(input_path) if input_path == "-" else str(Path(input_path).resolve()),
        input_sha256=input_sha, input_size=input_size, parts=parts,
        total_records=total_records, total_bases=total_bases,
        balanced_by="bases" if total_bases else "records",
    )
    _remove_stale_parts(out, {p.file for p in parts})
    atomic_write_text(out / MANIFEST_NAME, manifest.to_json())
    seconds = time.monotonic() - began
    logger.info(
        "split: %d record(s), %d bases into %d part(s) in %s (%.1f s, %.1f MB/s of input)",
        total_records, total_bases, n_parts, out, seconds, input_size / 1e6 / seconds if seconds > 0 else 0.0,
    )
    return manifest


def _write_parts(source: str | Path, n_parts: int, out: Path, total_records: int, total_bases: int) -> list[PartInfo]:
    """Write every part file (atomically) while streaming the second pass."""
    stream = _assignments(source, n_parts, total_records, total_bases)
    pending: tuple[int, FastaBytesRecord] | None = next(stream, None)
    parts: list[PartInfo] = []
    for index in range(n_parts):
        counts = {"records": 0, "bases": 0}
        sink: dict[str, _HashingWriter] = {}

        def write_part(handle: IO[bytes], index: int = index, counts: dict[str, int] = counts,
                       sink: dict[str, _HashingWriter] = sink) -> None:
            nonlocal pending
            hashing = sink["writer"] = _HashingWriter(handle)
            # filename="" and mtime=0: no name or time in the gzip header, so parts are reproducible.
            # The 1 MiB buffer hands the compressor large blocks, not one record at a time (isal
            # is slow on small writes); the blocks, so the bytes out, are the same run to run.
            with gzip_module().GzipFile(filename="", mode="wb", fileobj=hashing, compresslevel=GZIP_LEVEL,  # type: ignore[arg-type]
                                        mtime=0) as packed, io.BufferedWriter(packed, _WRITE_BUFFER) as buffered:  # type: ignore[arg-type]
                writer = FastaWriter(buffered)
                while pending is not None and pending[0] == index:
                    record = pending[1]
                    writer.write(record.description or record.id, record.sequence)
                    counts["records"] += 1
                    counts["bases"] += len(record.sequence)
                    pending = next(stream, None)

        name = part_file_name(index + 1)
        atomic_write(out / name, write_part)
        parts.append(PartInfo(name, counts["records"], counts["bases"], sink["writer"].digest.hexdigest()))
    if pending is not None:  # cannot happen: the last part takes every remaining record
        raise AssertionError("records left after the last part")
    return parts


def _remove_stale_parts(out: Path, keep: set[str]) -> None:
    """Remove ``part-*.fa.gz`` files of an earlier split with more parts (they would be mistaken for parts)."""
    for path in out.iterdir():
        if _PART_RE.match(path.name) and path.name not in keep:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
                logger.info("split: removed %s (part of an earlier split)", path)
