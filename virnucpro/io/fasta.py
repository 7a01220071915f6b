"""Streaming FASTA input and output shared by every command.

Reading:

* :func:`read_fasta` yields :class:`FastaRecord` objects (``id``, ``sequence``
  as ``str``, ``description``); :func:`read_fasta_bytes` yields the same
  records with the sequence as ``bytes`` (the fast path used by the pipeline).
* The input may be a path or ``-`` (standard input, read as bytes). Plain,
  gzip, bzip2 and xz data are told apart by their first bytes (magic numbers),
  never by the file name. Inputs that can be read only once (``-``, named
  pipes, process substitution ``<(zcat x.fa.gz)``, character devices) work
  too: their first bytes are kept in memory instead of seeking back
  (:func:`is_stream` tells them apart, for callers that must not read twice).
* The reader holds one record at a time (plus a 1 MiB read block), so peak
  memory is about two to three times the largest record, whatever the file
  size. Duplicate IDs are refused with 8 bytes per record (a 64-bit hash of
  each ID, :mod:`virnucpro.io.record_ids`), not a set of the IDs.
* Records are parsed like Biopython's ``SeqIO.parse(..., "fasta")``, which the
  published tool uses: the ID is the first whitespace-separated token of the
  header; spaces, tabs, CR and LF are removed from the sequence; blank lines
  are ignored. The sequence keeps its case.

FASTQ: an input whose first record starts with ``@`` is read as FASTQ by
:mod:`virnucpro.io.fastq` (qualities ignored); its records are the same
:class:`FastaBytesRecord` values, validated the same way, as the FASTA of the
same reads, and :attr:`FastaReader.format` says ``fastq``.

Validation (each failure is one :class:`~virnucpro.errors.InputError` line
that names the file): missing or unreadable file, closed standard input, empty
input, no FASTA header, a malformed or truncated FASTQ record, binary data, unsupported compression (zip,
lz4), truncated or corrupt compressed data, a header without an ID, duplicate
IDs, non-ASCII or control bytes in a sequence, and (when DNA is expected)
protein sequences and characters that are not nucleotide codes.

DNA-versus-protein rule, per record, over the letters among its first 2 000
characters: the record is taken for protein when more than half of them are
not A, C, G, T, U or N (any case) AND at least one is a letter that is not an
IUPAC nucleotide code (E, F, I, J, L, O, P, Q or Z). So N runs and IUPAC
ambiguity codes (R, Y, K, M, S, W, B, D, H, V) never trigger it, however short
or ambiguous the record; real proteins (10% L, plus E, F, I, P, Q) are caught.
A short peptide made only of IUPAC letters (``MKV``) passes as DNA.

Nucleotide codes (when DNA is expected): the IUPAC codes ``ACGTUN RYSWKMBDHV``
in either case are accepted and kept, as the published tool keeps them (its
codon table leaves a codon with an ambiguity code untranslated). Any other
character (digits, ``*``, ``X``, other letters, alignment gaps ``-`` and ``.``)
is an input error naming the record, the character and its 1-based position
in the sequence: such a character would silently change the scores.

RNA: ``U``/``u`` is read as ``T``/``t`` (so an RNA record gives exactly the
chunks, frames and scores of its DNA version; the published tool would drop
every codon with a U). The first RNA record is reported once in the log, and
:attr:`FastaReader.stats` counts them (``rna_records``) for the run summary.

Writing: :class:`FastaWriter` writes one record per header line, unwrapped by
default (``line_width`` wraps).
"""

from __future__ import annotations

import logging
import lzma
import os
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from virnucpro.errors import InputError
from virnucpro.io.fasta_open import (  # input_stem and its constants live there, re-exported here
    BLOCK_SIZE,
    COMPRESSION_EXTENSIONS,
    FASTA_EXTENSIONS,
    STDIN,
    STDIN_STEM,
    STREAM_STEM,
    check_stream_open,
    display_name,
    input_stem,
    is_stream,
    one_line,
    open_error,
    open_input,
    sniff_compression,
)
from virnucpro.io.fastq import parse_fastq
from virnucpro.io.record_ids import DuplicateIds

__all__ = [
    "COMPRESSION_EXTENSIONS", "DNA_SAMPLE_SIZE", "FASTA_EXTENSIONS", "NUCLEOTIDE_CODES", "STDIN", "STDIN_STEM",
    "STREAM_STEM",
    "FastaBytesRecord", "FastaReader", "FastaRecord", "FastaWriter", "ReaderStats", "check_stream_open", "display_name",
    "input_stem", "is_stream", "open_input", "read_fasta", "read_fasta_bytes", "sniff_compression",
    "write_fasta",
]

logger = logging.getLogger(__name__)

DNA_SAMPLE_SIZE = 2_000
"""Characters of each record inspected by the DNA-versus-protein rule."""

_SNIFF_SIZE = 8192
_SEQ_WHITESPACE = b" \t\r\n"
_HIGH_BYTES = bytes(range(128, 256))
_CONTROL = bytes(b for b in range(256) if b < 32 and b not in _SEQ_WHITESPACE) + b"\x7f"

# Sample classification in one ``bytes.translate``: ACGTUN (any case) -> "D",
# letters that only occur in proteins -> "Q", other ASCII letters -> "P",
# control bytes -> "X", other printable bytes deleted.
_DNA_LETTERS = b"ACGTUNacgtun"


_PROTEIN_ONLY_LETTERS = b"EFIJLOPQZefijlopqz"  # letters that are not IUPAC nucleotide codes (X aside)
NUCLEOTIDE_CODES = b"ACGTUNRYSWKMBDHV"
"""The accepted sequence characters (either case) when DNA is expected."""
_NUCLEOTIDE_BYTES = NUCLEOTIDE_CODES + NUCLEOTIDE_CODES.lower()
_DNA_CODES = _NUCLEOTIDE_BYTES.translate(None, b"Uu")
_U_TO_T = bytes.maketrans(b"Uu", b"Tt")
_GAPS = b"-."


def _sample_class(byte: int) -> int:
    if byte in _DNA_LETTERS:
        return ord("D")
    if byte in _PROTEIN_ONLY_LETTERS:
        return ord("Q")
    if chr(byte).isascii() and chr(byte).isalpha():
        return ord("P")
    if byte < 32 or byte == 127:
        return ord("X")
    return byte


_SAMPLE_CLASS = bytes(_sample_class(b) for b in range(256))
# bytes.translate deletes from the ORIGINAL bytes, so the delete set must never hold a letter.
_SAMPLE_DELETE = bytes(b for b in range(32, 256) if b != 127 and not (b < 128 and chr(b).isalpha()))

_DECOMPRESS_ERRORS = (EOFError, zlib.error, lzma.LZMAError, OSError)


@dataclass(frozen=True, slots=True)
class FastaRecord:
    """One FASTA record.

    Attributes:
        id: first whitespace-separated token of the header line.
        sequence: the sequence with whitespace removed, in the input's case.
        description: the whole header line after ``>``, trailing space removed.
    """

    id: str
    sequence: str
    description: str = ""


@dataclass(frozen=True, slots=True)
class FastaBytesRecord:
    """A :class:`FastaRecord` whose sequence is ASCII ``bytes`` (no decoding cost)."""

    id: str
    sequence: bytes
    description: str = ""


@dataclass(slots=True)
class ReaderStats:
    """What a :class:`FastaReader` saw so far (complete once it is exhausted).

    Attributes:
        records: records read.
        rna_records: records that held ``U``/``u`` and were read as DNA (U as T);
            worth reporting in a run summary (``rna_records``).
        rna_ids: IDs of the first few such records (at most 5), for messages.
    """

    records: int = 0
    rna_records: int = 0
    rna_ids: list[str] = field(default_factory=list)


class FastaReader:
    """Iterate over the records of one FASTA input, streaming.

    Opening the input and checking its first bytes happen in the constructor,
    so a missing, empty or binary input fails before any work starts;
    later problems (duplicate IDs, truncated compressed data, protein records)
    are raised while iterating.

    Use as an iterator of :class:`FastaBytesRecord`, ideally in a ``with``
    block (which closes the file)::

        with FastaReader("contigs.fa.gz") as reader:
            for record in reader:
                ...

    Args:
        path: a file path, or ``-`` for standard input.
        expect_dna: reject records that look like protein (see module doc).
        check_ids: refuse a repeated record ID (found at most
            :data:`~virnucpro.io.record_ids.BATCH_RECORDS` records after it, and
            always before the end of the input is reported).

    Raises:
        InputError: see the module documentation for the cases.
    """

    def __init__(self, path: str | os.PathLike[str], *, expect_dna: bool = True, check_ids: bool = True) -> None:
        self.path = path
        self.name = display_name(path)
        self.expect_dna = expect_dna
        self.stats = ReaderStats()
        self._ids: DuplicateIds | None = None
        if check_ids:
            # A file is read again for the exact look at colliding hashes; a stream spools its IDs.
            self._ids = DuplicateIds(self.name, None if is_stream(path) else self._reread_ids)
        self._stream, self.compression = open_input(path)
        self._what = f"{self.compression} data" if self.compression else "data"
        #: ``fasta`` or ``fastq`` (told from the first record).
        self.format = "fasta"
        try:
            first = self._read_first()
        except BaseException:
            self.close()
            raise
        self._records = self._parse_fastq(first) if self.format == "fastq" else self._parse(first)

    # -- reading -----------------------------------------------------------

    def _read(self, size: int = BLOCK_SIZE) -> bytes:
        try:
            return self._stream.read(size)
        except _DECOMPRESS_ERRORS as exc:
            if self.compression is None and not isinstance(exc, EOFError):
                raise open_error(self.name, exc) from exc  # type: ignore[arg-type]
            raise InputError(
                f"{self.name}: truncated or corrupt {self.compression or 'input'} file "
                f"({one_line(str(exc)) or type(exc).__name__})"
            ) from exc

    def _read_first(self) -> bytes:
        """Read the first block and check that the input starts like FASTA."""
        data = self._read(BLOCK_SIZE)
        while len(data) < _SNIFF_SIZE:
            more = self._read(BLOCK_SIZE)
            if not more:
                break
            data += more
        if data.startswith(b"\xef\xbb\xbf"):  # UTF-8 byte order mark
            data = data[3:]
        stripped = data.lstrip()
        while not stripped:
            if not data:
                raise InputError(f"{self.name}: the input is empty")
            data = self._read(BLOCK_SIZE)
            if not data:
                raise InputError(f"{self.name}: the input is empty (only blank lines)")
            stripped = data.lstrip()
        sniff = stripped[:_SNIFF_SIZE]
        binary = InputError(f"{self.name}: the input is binary {self._what}, not a FASTA text file")
        if _looks_binary(sniff):
            raise binary
        if stripped[:1] == b"@":
            self.format = "fastq"
            return stripped
        if stripped[:1] != b">":
            if not sniff.isascii() and len(sniff.translate(None, _HIGH_BYTES)) < 0.7 * len(sniff):
                raise binary
            raise InputError(f"{self.name}: no FASTA records (the first line does not start with '>')")
        return stripped

    def _parse(self, data: bytes) -> Iterator[FastaBytesRecord]:
        """Split the decompressed byte stream into records (one record in memory at a time)."""
        buf = bytearray(data)
        eof = False
        pos = 0  # index of the current record's '>'
        number = 0
        while True:
            # Header line: from buf[pos] ('>') to the next newline.
            search = pos
            newline = buf.find(b"\n", search)
            while newline < 0 and not eof:
                del buf[:pos]
                search, pos = len(buf), 0
                more = self._read()
                eof = not more
                buf += more
                newline = buf.find(b"\n", search)
            if newline < 0:
                newline = len(buf)
            # Sequence: up to the next "\n>" (the start of the next header).
            search = newline
            nxt = _find_header(buf, search)
            while nxt < 0 and not eof:
                del buf[:pos]
                newline -= pos
                search, pos = max(len(buf) - 1, newline), 0
                more = self._read()
                eof = not more
                buf += more
                nxt = _find_header(buf, search)
            end = nxt if nxt >= 0 else len(buf)
            number += 1
            yield self._make_record(buf, pos, newline, end, number)
            if nxt < 0:
                self._end_of_input()
                return
            pos = nxt + 1

    def _parse_fastq(self, data: bytes) -> Iterator[FastaBytesRecord]:
        """FASTQ records (:mod:`virnucpro.io.fastq`), made and checked like FASTA ones."""
        for number, title, sequence in parse_fastq(data, self._read, self.name):
            yield self._record(title, sequence, number)
        self._end_of_input()

    def _end_of_input(self) -> None:
        """The last records' duplicate check, before the end is reported."""
        if self._ids is not None:
            self._ids.finish()
            self._ids.close()

    def _reread_ids(self, count: int) -> Iterator[str]:
        """The IDs of the first ``count`` records, read again (a file only; for colliding hashes)."""
        with FastaReader(self.path, expect_dna=False, check_ids=False) as again:
            for _, record in zip(range(count), again):
                yield record.id

    def _make_record(
        self, buf: bytearray, pos: int, newline: int, end: int, number: int
    ) -> FastaBytesRecord:
        sequence = bytes(memoryview(buf)[newline + 1 : end]).replace(b"\n", b"") if end > newline else b""
        return self._record(bytes(buf[pos + 1 : newline]), sequence, number)

    def _record(self, header: bytes, sequence: bytes, number: int) -> FastaBytesRecord:
        """The record of a header line (after ``>`` or ``@``) and its sequence lines joined, checked."""
        title = header.decode("utf-8", "surrogateescape").rstrip()
        parts = title.split(None, 1)
        if not parts:
            raise InputError(f"{self.name}: record {number} has an empty header line (no ID)")
        record_id = parts[0]
        if self._ids is not None:
            self._ids.add(record_id)
        if b"\r" in sequence or b" " in sequence or b"\t" in sequence:
            sequence = sequence.translate(None, _SEQ_WHITESPACE)
        if sequence:
            self._check_sequence(record_id, sequence)
            if self.expect_dna:
                # One pass for the common case (plain DNA: nothing left); U and bad characters are rare.
                rest = sequence.translate(None, _DNA_CODES)
                if rest:
                    if rest.translate(None, b"Uu"):
                        self._check_nucleotides(record_id, sequence)
                    sequence = self._read_rna(record_id, sequence)
        self.stats.records += 1
        return FastaBytesRecord(record_id, sequence, title)

    def _check_sequence(self, record_id: str, sequence: bytes) -> None:
        # One pass over a sample: "D" for ACGTUN, "P" for other letters, "X" for
        # control bytes; other printable characters are deleted.
        sample = sequence[:DNA_SAMPLE_SIZE].translate(_SAMPLE_CLASS, _SAMPLE_DELETE)
        if not sequence.isascii() or b"X" in sample:
            raise InputError(
                f"{self.name}: record '{record_id}' holds non-text bytes (binary data?), "
                "not a DNA sequence"
            )
        if self.expect_dna:
            protein_only = sample.count(b"Q")
            other = sample.count(b"P") + protein_only
            if protein_only and other * 2 > len(sample):
                share = round(100 * other / len(sample))
                raise InputError(
                    f"{self.name}: record '{record_id}' looks like a protein sequence "
                    f"({share}% of its letters are not A, C, G, T, U or N); DNA is needed"
                )

    def _check_nucleotides(self, record_id: str, sequence: bytes) -> None:
        """Refuse the first character that is not an IUPAC nucleotide code (see module doc)."""
        bad = sequence.translate(None, _NUCLEOTIDE_BYTES)
        if not bad:
            return
        char = bad[:1]
        position = sequence.index(char) + 1
        shown = repr(char.decode("ascii", "backslashreplace"))
        where = f"{self.name}: record '{record_id}': {shown} at position {position}"
        if char in _GAPS:
            raise InputError(
                f"{where}: alignment gap characters are not allowed: remove them (e.g. seqkit seq -g)"
            )
        raise InputError(
            f"{where} is not a nucleotide code (accepted: IUPAC codes "
            f"{NUCLEOTIDE_CODES.decode()}, either case)"
        )

    def _read_rna(self, record_id: str, sequence: bytes) -> bytes:
        """Read U as T (said once per input in the log; counted in :attr:`stats`)."""
        stats = self.stats
        stats.rna_records += 1
        if len(stats.rna_ids) < 5:
            stats.rna_ids.append(record_id)
        if stats.rna_records == 1:
            logger.warning(
                "%s: record '%s' is RNA (holds U): U is read as T in it and in every later RNA record",
                self.name, record_id,
            )
        return sequence.translate(_U_TO_T)

    # -- iterator and context manager protocol -----------------------------

    def __iter__(self) -> FastaReader:
        return self

    def __next__(self) -> FastaBytesRecord:
        return next(self._records)

    def close(self) -> None:
        """Close the input (standard input itself stays open)."""
        records = getattr(self, "_records", None)
        if records is not None:
            records.close()
        ids = getattr(self, "_ids", None)
        if ids is not None:
            ids.close()
        try:
            self._stream.close()
        except _DECOMPRESS_ERRORS:
            pass

    def __enter__(self) -> FastaReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _find_header(buf: bytearray, start: int) -> int:
    """Index of the first "\\n>" at or after ``start``, or -1.

    Searching for the single byte ">" (memchr) and checking the byte before it
    is many times faster than a two-byte search, as ">" is rare in sequences.
    """
    at = buf.find(b">", start + 1)
    while at > 0 and buf[at - 1] != 10:
        at = buf.find(b">", at + 1)
    return at - 1 if at > 0 else -1


def _looks_binary(sample: bytes) -> bool:
    """True when a sample holds a NUL byte or more than 5% other control bytes."""
    if b"\x00" in sample:
        return True
    return len(sample.translate(None, _CONTROL)) < len(sample) * 0.95


def read_fasta_bytes(path: str | os.PathLike[str], *, expect_dna: bool = True) -> FastaReader:
    """Open a FASTA input and return a streaming iterator of :class:`FastaBytesRecord`.

    Args:
        path: a file path, or ``-`` for standard input.
        expect_dna: reject records that look like protein.

    Returns:
        A :class:`FastaReader` (iterator and context manager).

    Raises:
        InputError: at once for problems with the start of the file, later
            while iterating for problems further on.
    """
    return FastaReader(path, expect_dna=expect_dna)


def read_fasta(path: str | os.PathLike[str], *, expect_dna: bool = True) -> Iterator[FastaRecord]:
    """Stream the records of a FASTA input as :class:`FastaRecord` (sequence as ``str``).

    The file is opened and its start checked when this function is called;
    records are read one at a time while iterating.

    Args:
        path: a file path, or ``-`` for standard input.
        expect_dna: reject records that look like protein.

    Raises:
        InputError: see the module documentation.
    """
    reader = FastaReader(path, expect_dna=expect_dna)

    def records() -> Iterator[FastaRecord]:
        with reader:
            for rec in reader:
                yield FastaRecord(rec.id, rec.sequence.decode("ascii"), rec.description)

    return records()


class FastaWriter:
    """Write FASTA records to a binary file, one header line each.

    Args:
        handle: a binary file object opened for writing.
        line_width: wrap sequences at this many characters; ``None`` (the
            default) writes each sequence on one line.
    """

    def __init__(self, handle: BinaryIO, line_width: int | None = None) -> None:
        if line_width is not None and line_width < 1:
            raise ValueError("line_width must be positive")
        self._handle = handle
        self._width = line_width
        self.count = 0

    def write(self, record_id: str, sequence: str | bytes) -> None:
        """Write one record."""
        seq = sequence.encode("ascii") if isinstance(sequence, str) else bytes(sequence)
        if self._width is not None and len(seq) > self._width:
            width = self._width
            seq = b"\n".join(seq[i : i + width] for i in range(0, len(seq), width))
        self._handle.write(b">" + record_id.encode("utf-8", "surrogateescape") + b"\n" + seq + b"\n")
        self.count += 1

    def write_records(self, records: Iterable[FastaRecord]) -> int:
        """Write every record of ``records``; returns how many were written."""
        start = self.count
        for record in records:
            self.write(record.id, record.sequence)
        return self.count - start


def write_fasta(
    path: str | os.PathLike[str], records: Iterable[FastaRecord], line_width: int | None = None
) -> int:
    """Write ``records`` to a new FASTA file at ``path``; returns the number written."""
    with open(path, "wb") as handle:
        return FastaWriter(handle, line_width).write_records(records)
