"""The chunk and frame ID formats (SPEC 2-3, 7), built and parsed only here.

* chunk ID: ``f"{record_id}_chunk_{k}"``, ``k`` 1-based (SPEC 2);
* frame ID: chunk ID + ``F1``..``F3`` / ``R1``..``R3``, no separator (SPEC 3);
* the published ``Modified_ID`` of a frame is its ID minus the last two
  characters, which is its chunk ID (SPEC 7).

Published quirks kept as they are:

* there is no escaping: a record ID may itself contain ``_chunk_`` (e.g.
  ``x_chunk_2``, whose first chunk is ``x_chunk_2_chunk_1``), so the record of
  a chunk is found from the *last* ``_chunk_``;
* the frame suffix is recognised by length (two characters), not by value, as
  the published tool strips ``[:-2]``.
"""

from __future__ import annotations

CHUNK_SEPARATOR = "_chunk_"
#: Length of every frame suffix (``F1`` .. ``R3``).
FRAME_SUFFIX_LENGTH = 2


def chunk_id(record_id: str, k: int) -> str:
    """ID of chunk ``k`` (1-based) of record ``record_id``."""
    return f"{record_id}{CHUNK_SEPARATOR}{k}"


def chunk_id_prefix(record_id: bytes) -> bytes:
    """``record_id + b"_chunk_"``: the byte form the fast translate writer appends chunk numbers to."""
    return record_id + CHUNK_SEPARATOR.encode("ascii")


def frame_id(chunk: str, suffix: str) -> str:
    """ID of a kept frame: its chunk ID followed by its suffix (``F1`` .. ``R3``)."""
    return chunk + suffix


def chunk_of_frame(frame: str) -> str:
    """The chunk ID (published ``Modified_ID``) of a frame ID: all but the last two characters."""
    return frame[:-FRAME_SUFFIX_LENGTH]


def record_of_chunk(chunk: str) -> str:
    """The input record ID a chunk ID came from (everything before the last ``_chunk_``)."""
    return chunk.rsplit(CHUNK_SEPARATOR, 1)[0]


def parse_chunk_id(chunk: str) -> tuple[str, int] | None:
    """``(record_id, k)`` of a chunk ID, or None when it does not end in ``_chunk_<digits>``."""
    record, sep, index = chunk.rpartition(CHUNK_SEPARATOR)
    return (record, int(index)) if sep and index.isdigit() else None
