"""FASTQ records for the sequence reader: reads as they come off the sequencer.

:class:`~virnucpro.io.fasta.FastaReader` hands the input here when its first
non-blank byte is ``@`` (after the same compression sniffing as for FASTA), so
FASTQ, FASTQ.gz/.bz2/.xz and a FASTQ stream (``-``) are read exactly like the
FASTA of the same reads: the header line after ``@`` is the description, its
first word the ID, and the sequence is validated as DNA. Qualities are ignored
(only their length is checked).

Record layout, as Biopython's ``FastqGeneralIterator`` reads it:

* ``@`` header line;
* sequence lines (usually one; old multi-line FASTQ wraps them) up to a line
  starting with ``+`` (which may repeat the header; it is ignored);
* quality lines until they hold as many characters as the sequence (so a
  quality line starting with ``@`` or ``+`` is never taken for a header).

Blank lines between records are skipped. A malformed or truncated record is one
:class:`~virnucpro.errors.InputError` line naming the file and the record
number (1-based): a header not starting with ``@``, no ``+`` line before the
next header or after more than one sequence line (malformed: the third line is
shown), the input ending after a lone sequence line or a quality string shorter
than the sequence (truncated), a quality string longer than the sequence.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from virnucpro.errors import InputError

_SPACE = b" \t\r"


def _lines(first: bytes, read: Callable[[], bytes]) -> Iterator[bytes]:
    """Lines of the decompressed stream (``first`` then ``read()`` blocks until empty), without
    line ends; one block in memory."""
    rest = first
    while True:
        more = read()
        if not more:
            break
        data = rest + more
        lines = data.split(b"\n")
        rest = lines.pop()
        yield from lines
    if rest:
        yield from rest.split(b"\n")


def _shown(line: bytes) -> str:
    text = line[:40].decode("ascii", "backslashreplace")
    return repr(text + ("..." if len(line) > 40 else ""))


def _third_line(parts: list[bytes]) -> str:
    """Where a record's ``+`` line should be, what is there (its third line), for a message."""
    lines = [part for part in parts if part.strip()]
    return f" (its third line is {_shown(lines[1])})" if len(lines) > 1 else ""


def parse_fastq(first: bytes, read: Callable[[], bytes], name: str) -> Iterator[tuple[int, bytes, bytes]]:
    """``(record number, header line after '@', sequence)`` of each FASTQ record, streaming.

    Args:
        first: the data read so far (starting at the first ``@``).
        read: returns the next block of the stream, ``b""`` at the end.
        name: the input's name for messages.

    Raises:
        InputError: a malformed or truncated record (one line, file and record number).
    """
    lines = _lines(first, read)
    number = 0
    for line in lines:
        if not line.strip():
            continue
        number += 1
        where = f"{name}: FASTQ record {number}"
        if line[:1] != b"@":
            raise InputError(f"{where}: expected a header line starting with '@', found {_shown(line)}")
        title = line[1:]
        parts: list[bytes] = []
        for body in lines:  # the same iterator goes on after the record
            if body[:1] == b"+":
                break
            if body[:1] == b"@":
                raise InputError(f"{where} is malformed: no '+' line before the next '@' header"
                                 f"{_third_line(parts)}")
            parts.append(body)
        else:
            if len([part for part in parts if part.strip()]) > 1:  # a line after the sequence, not '+'
                raise InputError(f"{where} is malformed: no '+' line after its sequence{_third_line(parts)}")
            raise InputError(f"{where} is truncated: the input ends before its '+' line")
        sequence = b"".join(parts).translate(None, _SPACE)
        quality = 0
        while quality < len(sequence):
            qualities = next(lines, None)
            if qualities is None:
                raise InputError(f"{where} is truncated: {quality} quality characters for "
                                 f"{len(sequence)} bases at the end of the input")
            quality += len(qualities.translate(None, _SPACE))
        if quality != len(sequence):
            raise InputError(f"{where} is malformed: {quality} quality characters for {len(sequence)} bases")
        yield number, title, sequence
