"""Duplicate record IDs, found in 8 bytes per record instead of a set of ID strings.

A read set holds tens of millions of records; a Python set (or dict) of their
IDs costs 150-200 bytes per record. :class:`DuplicateIds` keeps one 64-bit hash
per record instead, in sorted numpy runs (a log-structured merge: runs are
merged as they reach equal sizes, up to :data:`MAX_RUN` hashes each, so adding
costs O(log n) amortised per record, a merge never holds more than two runs of
8 MiB beside each other, and looking up a batch is a few ``searchsorted``).

Records are checked in batches of :data:`BATCH_RECORDS` (and at the end of the
input), so a duplicate is refused at most one batch after its second
occurrence was read, and always before the input's last record was passed on
and the reader reports its end.

Two different IDs may share a hash. Only then is the exact second look taken:
the IDs of the earlier records are read again (from the input file itself, or,
for a stream that can be read only once, from a spool file the IDs were
appended to as they passed) and compared as strings. The error names the ID and
both record numbers, as the set did: ``duplicate record ID 'x' (records 3 and 9)``.

The hash is Python's ``hash`` of the ID (SipHash, randomised per process but
fixed within one, which is all a single reading needs).
"""

from __future__ import annotations

import tempfile
from array import array
from collections.abc import Callable, Iterable, Iterator
from typing import IO

import numpy as np

from virnucpro.errors import InputError

BATCH_RECORDS = 8192
"""Records per duplicate check (bounds how late a duplicate is found)."""

MAX_RUN = 1 << 20
"""Hashes per sorted run at most (8 MiB): bounds the transient memory of a merge."""

HASH_BITS = 64
"""Bits of each ID's hash that are compared (tests lower it to force collisions)."""


class DuplicateIds:
    """Refuse a repeated record ID, holding 8 bytes per record (plus one batch of IDs).

    Args:
        name: the input's display name (for the error).
        earlier_ids: ``earlier_ids(n)`` yields the IDs of records 1..n again, in order
            (re-reading a file); None: keep them in a temporary spool file as they are added
            (for a stream, which cannot be read twice). Called only when two hashes collide.
        hash_bits: bits of the hash compared (below 64 only to force collisions in tests).
        batch: records per check.
        max_run: hashes per sorted run at most.
    """

    def __init__(self, name: str, earlier_ids: Callable[[int], Iterable[str]] | None = None, *,
                 hash_bits: int | None = None, batch: int = BATCH_RECORDS, max_run: int = MAX_RUN) -> None:
        self.name = name
        bits = HASH_BITS if hash_bits is None else hash_bits
        self._mask = None if bits >= 64 else (1 << bits) - 1
        self._batch, self._max_run = batch, max_run
        self._earlier = earlier_ids
        self._spool: IO[bytes] | None = None
        self._hashes = array("q")  # the pending batch, in record order
        self._ids: list[str] = []  # its IDs (one batch at most)
        self._runs: list[np.ndarray] = []  # sorted hashes of the checked records
        self.checked = 0  # records checked so far (record numbers 1..checked)

    def hash(self, record_id: str) -> int:
        """The hash compared for ``record_id``."""
        value = hash(record_id)
        return value if self._mask is None else value & self._mask

    def add(self, record_id: str) -> None:
        """Add the next record's ID (record number ``checked + pending + 1``).

        Raises:
            InputError: a record of the batch this ID completes repeats an earlier ID.
        """
        self._hashes.append(self.hash(record_id))
        self._ids.append(record_id)
        if self._earlier is None:
            if self._spool is None:
                self._spool = tempfile.TemporaryFile(prefix="virnucpro-ids-")
            self._spool.write(record_id.encode("utf-8", "surrogateescape") + b"\n")
        if len(self._ids) >= self._batch:
            self._check()

    def finish(self) -> None:
        """Check the records added since the last batch (call at the end of the input).

        Raises:
            InputError: one of them repeats an earlier ID.
        """
        if self._ids:
            self._check()

    def close(self) -> None:
        """Drop the spool file, if any."""
        if self._spool is not None:
            self._spool.close()
            self._spool = None

    def memory_bytes(self) -> int:
        """Bytes held by the sorted hash runs (8 per checked record)."""
        return sum(run.nbytes for run in self._runs)

    def _check(self) -> None:
        keys = np.frombuffer(self._hashes, dtype=np.int64).copy()
        keys.sort(kind="stable")
        suspects: set[int] = set(keys[1:][keys[1:] == keys[:-1]].tolist())
        for run in self._runs:
            at = np.minimum(np.searchsorted(run, keys), len(run) - 1)
            suspects.update(keys[run[at] == keys].tolist())
        if suspects:
            self._second_look(suspects)
        self._runs.append(keys)
        while (len(self._runs) > 1 and len(self._runs[-2]) <= len(self._runs[-1])
               and len(self._runs[-2]) + len(self._runs[-1]) <= self._max_run):
            last = self._runs.pop()
            merged = np.concatenate((self._runs.pop(), last))
            merged.sort(kind="stable")  # two sorted runs: a linear merge
            self._runs.append(merged)
        self.checked += len(self._ids)
        self._hashes = array("q")
        self._ids = []

    def _earlier_ids(self, count: int) -> Iterator[str]:
        if self._earlier is not None:
            for k, record_id in enumerate(self._earlier(count)):
                if k >= count:
                    return
                yield record_id
            return
        spool = self._spool
        if spool is None:
            return
        spool.flush()
        spool.seek(0)
        try:
            for _ in range(count):
                yield spool.readline()[:-1].decode("utf-8", "surrogateescape")
        finally:
            spool.seek(0, 2)

    def _second_look(self, suspects: set[int]) -> None:
        """Compare the IDs behind colliding hashes exactly; raise for the first true repeat."""
        first = self.checked + 1  # record number of the batch's first record
        holders: dict[int, list[tuple[int, str]]] = {}
        for number, record_id in enumerate(self._earlier_ids(self.checked), 1):
            value = self.hash(record_id)
            if value in suspects:
                holders.setdefault(value, []).append((number, record_id))
        for k, record_id in enumerate(self._ids):
            if self._hashes[k] in suspects:
                holders.setdefault(self._hashes[k], []).append((first + k, record_id))
        repeat: tuple[int, int, str] | None = None  # (first number, second number, ID)
        for entries in holders.values():
            seen: dict[str, int] = {}
            for number, record_id in entries:
                if record_id in seen:
                    if repeat is None or number < repeat[1]:
                        repeat = (seen[record_id], number, record_id)
                    break
                seen[record_id] = number
        if repeat is not None:
            raise InputError(f"{self.name}: duplicate record ID '{repeat[2]}' (records {repeat[0]} and {repeat[1]})")
