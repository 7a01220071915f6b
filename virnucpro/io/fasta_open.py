"""Opening a FASTA input: a path, standard input or a pipe, plain or compressed.

:func:`open_input` returns a stream of the decompressed bytes. Compression is
found from the first bytes (magic numbers), never from the file name: gzip
(read by isal's ``igzip`` when installed, ~2.7x faster than the standard
library's zlib, which is the fallback), bzip2, xz and zstd (``compression.zstd``
on Python >= 3.14, else the ``zstandard`` package). Inputs
that can be read only once (``-``, named pipes, process substitution
``<(zcat x.fa.gz)``, character devices; see :func:`is_stream`) are never
rewound: their first bytes are kept and served again from memory.
:mod:`virnucpro.io.fasta` re-exports the public names.
"""

from __future__ import annotations

import bz2
import errno
import gzip
import io
import lzma
import os
import re
import stat
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, BinaryIO

from virnucpro.errors import InputError

STDIN = "-"
"""The path that means "read standard input"."""

BLOCK_SIZE = 1 << 20
"""Read block of the reader (and buffer size of the files it opens)."""

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
)
_UNSUPPORTED_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "a ZIP archive"),
    (b"\x04\x22\x4d\x18", "lz4-compressed"),
)


def display_name(path: str | os.PathLike[str]) -> str:
    """Return the name used for ``path`` in messages (``<stdin>`` for ``-``)."""
    return "<stdin>" if str(path) == STDIN else str(path)


def sniff_compression(head: bytes) -> str | None:
    """Name the compression of data starting with ``head`` (``gzip``, ``bzip2``, ``xz``, ``zstd``) or None."""
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    return None


class _Prepended(io.RawIOBase):
    """A raw stream that returns ``head`` and then the rest of ``stream`` (for pipes).

    Closing it closes ``stream`` when ``owns`` is true (a pipe we opened), never
    standard input.
    """

    def __init__(self, head: bytes, stream: BinaryIO, *, owns: bool) -> None:
        super().__init__()
        self._head = head
        self._stream = stream
        self._owns = owns

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._stream.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if self._owns and not self.closed:
            self._stream.close()
        super().close()


def is_stream(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` can be read only once: ``-``, a named pipe (FIFO), a character
    device, a socket, or a ``/dev/fd/N`` of a pipe (process substitution ``<(...)``).

    Such an input cannot be hashed before it is read nor read again to resume a run;
    regular files (also behind a symlink or ``/dev/fd/N``) are not streams. A path that
    does not exist is not a stream (opening it reports the error). Never opens ``path``.
    """
    if str(path) == STDIN:
        return True
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISSOCK(mode)


def check_stream_open(path: str | os.PathLike[str]) -> None:
    """Raise the one-line :class:`InputError` now when ``path`` is ``-`` and standard input is
    closed (``<&-``), without reading anything: a stream can be read only once, so a caller
    that validates the input before its real read (``predict``) checks only this."""
    if str(path) != STDIN:
        return
    stdin = sys.stdin
    if stdin is None:
        raise InputError(f"{display_name(path)}: {_CLOSED_STDIN}")
    try:
        descriptor = stdin.fileno()
    except (AttributeError, OSError, ValueError):  # a replaced stdin (embedding program, tests)
        return
    try:
        os.fstat(descriptor)
    except OSError:
        raise InputError(f"{display_name(path)}: {_CLOSED_STDIN}") from None


_STDIN_ALIASES = ("/dev/stdin", "/dev/fd/0", "/proc/self/fd/0")
_CLOSED_STDIN = "standard input is closed; give an input file, or pipe data in"


def open_error(name: str, exc: OSError) -> InputError:
    """The one-line :class:`InputError` for an ``OSError`` met opening or reading ``name``."""
    if name in _STDIN_ALIASES and sys.stdin is None:
        return InputError(f"{name}: {_CLOSED_STDIN}")
    if isinstance(exc, FileNotFoundError):
        return InputError(f"{name}: no such file")
    if isinstance(exc, IsADirectoryError):
        return InputError(f"{name}: is a directory, not a FASTA file")
    if isinstance(exc, PermissionError):
        return InputError(f"{name}: cannot read the file (permission denied)")
    reason = exc.strerror or str(exc) or type(exc).__name__
    return InputError(f"{name}: cannot read the file ({one_line(reason)})")


def one_line(text: str) -> str:
    """``text`` with every run of whitespace (newlines included) made one space."""
    return " ".join(str(text).split())


def open_input(path: str | os.PathLike[str]) -> tuple[BinaryIO, str | None]:
    """Open ``path`` (or stdin for ``-``) for reading decompressed bytes.

    Args:
        path: a file path, or ``-`` for standard input.

    Returns:
        ``(stream, compression)``: a binary stream of the decompressed data and
        the compression found from the first bytes (``None`` for plain data).
        The caller closes the stream (closing the stdin wrapper leaves
        ``sys.stdin`` open).

    Raises:
        InputError: the file is missing, unreadable, a directory, or compressed
            with an unsupported method.
    """
    name = display_name(path)
    try:
        raw, head = _open_raw(path)
    except OSError as exc:
        if str(path) == STDIN and exc.errno == errno.EBADF:  # descriptor 0 closed after start-up
            raise InputError(f"{name}: {_CLOSED_STDIN}") from exc
        raise open_error(name, exc) from exc
    for magic, what in _UNSUPPORTED_MAGIC:
        if head.startswith(magic):
            raw.close()
            raise InputError(f"{name}: input is {what}; use plain text, gzip, bzip2, xz or zstd")
    kind = sniff_compression(head)
    if kind is None:
        return raw, None
    if kind == "zstd" and not zstd_available():
        raw.close()
        raise InputError(f"{name}: input is zstd-compressed; reading it needs the 'zstandard' package "
                         "(pip install zstandard) on Python < 3.14, or decompress it first (zstd -dc)")
    try:
        if kind == "gzip":
            reader: BinaryIO = gzip_module().GzipFile(fileobj=raw, mode="rb")  # type: ignore[assignment]
        elif kind == "bzip2":
            reader = bz2.BZ2File(raw, mode="rb")  # type: ignore[assignment]
        elif kind == "zstd":
            reader = io.BufferedReader(_ZstdReader(raw), buffer_size=BLOCK_SIZE)  # type: ignore[assignment]
        else:
            reader = lzma.LZMAFile(raw, mode="rb")  # type: ignore[assignment]
    except BaseException:
        raw.close()
        raise
    return _ClosingDecompressor(reader, raw), kind  # type: ignore[return-value]


#: Set to 1 to read and write gzip with the standard library even where isal is installed.
NO_ISAL_VARIABLE = "VIRNUCPRO_NO_ISAL"


def gzip_module() -> ModuleType:
    """``isal.igzip`` when installed (the interface of :mod:`gzip`, the same decompressed bytes,
    faster), else :mod:`gzip` (also with ``$VIRNUCPRO_NO_ISAL=1``)."""
    if os.environ.get(NO_ISAL_VARIABLE, "").strip().lower() in ("1", "true", "yes", "on"):
        return gzip
    try:
        from isal import igzip
    except ImportError:
        return gzip
    return igzip


def _zstd_decompressor() -> Any:
    """A one-frame zstd decompressor with ``decompress``, ``eof`` and ``unused_data``."""
    if sys.version_info >= (3, 14):
        from compression import zstd  # type: ignore[import-not-found]

        return zstd.ZstdDecompressor()
    import zstandard  # open_input checked that it imports (zstd_available)

    return zstandard.ZstdDecompressor().decompressobj()


def zstd_available() -> bool:
    """True when zstd input can be read: Python >= 3.14, or the ``zstandard`` package."""
    if sys.version_info >= (3, 14):
        return True
    try:
        import zstandard  # noqa: F401
    except ImportError:
        return False
    return True


class _ZstdReader(io.RawIOBase):
    """Decompressed bytes of a zstd stream of one or more frames (``zstd`` and ``cat a.zst b.zst``).

    An input that ends inside a frame raises :class:`EOFError`, so a truncated file is
    reported, never read as shorter data (``zstandard``'s own stream reader stops silently).
    """

    def __init__(self, raw: BinaryIO) -> None:
        super().__init__()
        self._raw = raw
        self._decompressor = _zstd_decompressor()
        self._pending = b""  # input not given to the decompressor yet (the next frame's start)
        self._out = b""  # decompressed bytes, returned from self._at on
        self._at = 0
        self._in_frame = False  # the current frame has received input

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        while self._at >= len(self._out):
            # 64 KiB in at a time bounds the bytes out of one call (zstd packs runs of N very tightly)
            data, self._pending = self._pending or self._raw.read(1 << 16), b""
            if not data:
                if self._in_frame:
                    raise EOFError("compressed file ended before the end of a zstd frame")
                return 0
            self._in_frame = True
            try:
                self._out, self._at = self._decompressor.decompress(data), 0
            except Exception as exc:  # zstandard.ZstdError / compression.zstd.ZstdError: not OSErrors
                raise OSError(f"corrupt zstd data ({exc})") from exc
            if self._decompressor.eof:  # one frame done; what follows is the next one
                self._pending = self._decompressor.unused_data
                self._decompressor = _zstd_decompressor()
                self._in_frame = False
        n = min(len(buffer), len(self._out) - self._at)
        buffer[:n] = self._out[self._at: self._at + n]
        self._at += n
        return n


def _open_raw(path: str | os.PathLike[str]) -> tuple[BinaryIO, bytes]:
    """Open the undecoded bytes of ``path`` and read its first 8 bytes without losing them.

    A regular file is rewound after the read; a pipe, device or stdin cannot be,
    so its first bytes are served again from memory (:class:`_Prepended`).
    """
    if str(path) == STDIN:
        stdin = sys.stdin
        if stdin is None:  # started with file descriptor 0 closed (``<&-``)
            raise InputError(f"{display_name(path)}: {_CLOSED_STDIN}")
        stream: BinaryIO = stdin.buffer
        owns = False
    else:
        stream = open(path, "rb", buffering=BLOCK_SIZE)  # noqa: SIM115 - closed by the caller
        owns = True
    try:
        head = stream.read(8)
        if owns and stream.seekable():
            stream.seek(0)
            return stream, head
    except BaseException:
        if owns:
            stream.close()
        raise
    prepended = _Prepended(head, stream, owns=owns)
    return io.BufferedReader(prepended, buffer_size=BLOCK_SIZE), head  # type: ignore[return-value]


class _ClosingDecompressor(io.BufferedIOBase):
    """A decompressing reader that also closes the raw file it reads from."""

    def __init__(self, reader: BinaryIO, raw: BinaryIO) -> None:
        super().__init__()
        self._reader = reader
        self._raw = raw

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:  # type: ignore[override]
        return self._reader.read(-1 if size is None else size)

    def close(self) -> None:
        try:
            self._reader.close()
        finally:
            self._raw.close()
            super().close()


STDIN_STEM = "stdin"
"""Output stem used when the input is standard input."""

STREAM_STEM = "stream"
"""Output stem used when the input is a file-descriptor path (``/dev/fd/N``)."""
_FD_PATH = re.compile(r"/(dev|proc/(self|\d+))/fd/\d+")

FASTA_EXTENSIONS = (
    ".fasta", ".fas", ".fa", ".fna", ".ffn", ".faa", ".frn", ".fsa", ".mfa", ".mpfa", ".seq", ".fastq", ".fq",
)
COMPRESSION_EXTENSIONS = (".gz", ".bgz", ".bz2", ".xz", ".zst", ".zstd")


def input_stem(path: str | os.PathLike[str]) -> str:
    """Return the output file stem for an input path.

    Compression extensions (``.gz``, ``.bgz``, ``.bz2``, ``.xz``, ``.zst``, ``.zstd``) and then one
    FASTA or FASTQ extension (``.fa``, ``.fasta``, ``.fna``, ``.fas``, ``.ffn``,
    ``.faa``, ``.fastq``, ``.fq``, ...) are removed, case-insensitively. Standard input gives
    ``stdin``; a file-descriptor path such as process substitution's
    ``/dev/fd/63`` gives ``stream`` (its number means nothing to the user).

    Examples:
        ``reads/contigs.fa.gz`` -> ``contigs``; ``sample.v2.fasta`` -> ``sample.v2``.
    """
    if str(path) in (STDIN, "/dev/stdin"):
        return STDIN_STEM
    if _FD_PATH.fullmatch(str(path)):
        return STREAM_STEM
    name = Path(path).name
    for extensions in (COMPRESSION_EXTENSIONS, FASTA_EXTENSIONS):
        lower = name.lower()
        for ext in extensions:
            if lower.endswith(ext) and len(name) > len(ext):
                name = name[: -len(ext)]
                break
    return name or Path(path).name
