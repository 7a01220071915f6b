"""Identical frames are embedded once per run: which frame reuses which embedding.

Read sets repeat reads, and two frames whose DNA differs can still translate
to the same protein, so each model kind is deduplicated on the sequence it
embeds (DNABERT-S on the nucleotides, ESM-2 on the protein). While the
translate stage writes a length group's shards it keeps a 96-bit BLAKE2b
digest of every distinct frame sequence per kind (never the sequences); as each
shard is written, :class:`ReusePlanner` finds each of its frames' first
occurrence in the group (the same plan :func:`plan_reuse` makes over the whole
group: a first occurrence depends only on earlier frames, so a shard's plan is
final once it and the group's earlier shards are written, and the shard can be
embedded while later ones are translated). A frame whose sequence occurred before, in
the same shard or an earlier one, is *borrowed*: its worker does not embed
it, and readers take its row from the feature file of the shard that owns
the first occurrence (:func:`virnucpro.pipeline.stages.feature_files.read_shard_features`).

The plan of one shard and kind is its reuse file
(``work/shards/shard-NNNNN.<kind>.reuse.tsv``, format in
:mod:`virnucpro.pipeline.stages.work_files`): one ``row  source_shard  source_row``
line per borrowed frame, ``row`` its 0-based position in the shard,
``source_row`` the row of the first occurrence in the source shard's feature
file (which holds only the frames that shard owns, in shard order). The plan
depends only on the input, the chunk length and the shard size, so a resumed
or re-translated run makes the same files and every feature file stays valid.

Deduplication stays inside a length group (``--min-length``): the shards of a
group added later never borrow from, or lend to, another group, so existing
groups are re-made byte for byte.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DIGEST_BYTES = 12
"""Bytes of each frame digest: 96 bits, so two distinct frames of even 10^9 collide with a
chance below 10^-11, in 16 bytes per distinct frame and kind with the planner's owner ordinal."""


def sequence_digest(sequence: str) -> bytes:
    """The :data:`DIGEST_BYTES` digest frames are compared by (equal digests: the same sequence)."""
    return hashlib.blake2b(sequence.encode("ascii"), digest_size=DIGEST_BYTES).digest()


@dataclass(frozen=True)
class Borrowed:
    """One frame that reuses another frame's embedding."""

    row: int  # position in its own shard (0-based, shard order)
    source_shard: int
    source_row: int  # row in the source shard's feature file


def plan_reuse(digests: bytes, shards: Sequence[tuple[int, int]]) -> dict[int, list[Borrowed]]:
    """Which frames of a group of shards reuse an earlier identical frame's embedding.

    Args:
        digests: the :func:`sequence_digest` of every frame of the group, concatenated in
            shard order (shard after shard, frames in shard order).
        shards: ``(shard index, frames)`` of the group's shards, in the same order.

    Returns:
        The borrowed frames of every shard of ``shards`` (an empty list when none), each
        pointing at the first occurrence of its sequence in the group.
    """
    sizes = np.array([frames for _, frames in shards], dtype=np.int64)
    total = int(sizes.sum())
    if len(digests) != total * DIGEST_BYTES:
        raise ValueError(f"{len(digests) // DIGEST_BYTES} digests for {total} frames")
    plan: dict[int, list[Borrowed]] = {index: [] for index, _ in shards}
    if not total:
        return plan
    keys = np.frombuffer(digests, dtype=f"V{DIGEST_BYTES}")
    # return_index sorts stably, so it gives each distinct digest's first position.
    _, first_positions, inverse = np.unique(keys, return_index=True, return_inverse=True)
    first = first_positions[inverse.reshape(-1)]
    positions = np.arange(total, dtype=np.int64)
    owned = first == positions
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    shard_of = np.searchsorted(starts, positions, side="right") - 1
    # A frame's row in its shard's feature file: how many owned frames precede it in its shard.
    owned_before = np.cumsum(owned) - owned
    feature_row = owned_before - owned_before[starts][shard_of]
    indices = [index for index, _ in shards]
    for position in np.flatnonzero(~owned):
        source = int(first[position])
        shard = int(shard_of[position])
        plan[indices[shard]].append(Borrowed(int(position - starts[shard]), indices[int(shard_of[source])],
                                             int(feature_row[source])))
    return plan


class ReusePlanner:
    """:func:`plan_reuse` one shard at a time, as a length group's shards are written.

    A frame's first occurrence depends only on the frames before it, so a shard's
    plan is final as soon as it and every earlier shard of its group were added:
    :meth:`add_shard` returns exactly what :func:`plan_reuse` over the whole group
    gives that shard. Memory: 16 bytes per distinct sequence of the group (its
    digest and the ordinal of its owning frame among the group's owned frames),
    plus two integers per shard that turn an ordinal into (shard, feature row).
    """

    def __init__(self) -> None:
        self._known = np.empty(0, dtype=f"V{DIGEST_BYTES}")  # sorted digests of owned frames
        self._ordinal = np.empty(0, dtype=np.uint32)  # their position among the group's owned frames
        self._starts: list[int] = []  # per added shard: ordinal of its first owned frame
        self._indices: list[int] = []  # per added shard: its index
        self._owned = 0

    def _source(self, ordinal: int) -> tuple[int, int]:
        """``(shard index, feature row)`` of the owned frame of this ordinal."""
        k = bisect.bisect_right(self._starts, ordinal) - 1
        return self._indices[k], ordinal - self._starts[k]

    def add_shard(self, index: int, digests: bytes) -> list[Borrowed]:
        """The borrowed frames of shard ``index`` (its frames' digests, in shard order)."""
        if len(digests) % DIGEST_BYTES:
            raise ValueError("digests are not whole")
        keys = np.frombuffer(digests, dtype=f"V{DIGEST_BYTES}")
        if not len(keys):
            return []
        uniq, first_in_shard, inverse = np.unique(keys, return_index=True, return_inverse=True)
        inverse = inverse.reshape(-1)
        at = np.searchsorted(self._known, uniq)
        found = np.zeros(len(uniq), dtype=bool)
        if len(self._known):
            inside = at < len(self._known)
            found[inside] = self._known[at[inside]] == uniq[inside]
        positions = np.arange(len(keys), dtype=np.int64)
        owned = ~found[inverse] & (first_in_shard[inverse] == positions)
        feature_row = np.cumsum(owned) - owned
        borrowed = []
        for position in np.flatnonzero(~owned):
            u = int(inverse[position])
            if found[u]:
                source = self._source(int(self._ordinal[at[u]]))
            else:
                source = (index, int(feature_row[first_in_shard[u]]))
            borrowed.append(Borrowed(int(position), *source))
        new = ~found
        if new.any():
            # uniq is sorted and at[new] are its insertion points: a linear merge, no re-sort.
            where = at[new]
            self._known = np.insert(self._known, where, uniq[new])
            ordinals = self._owned + feature_row[first_in_shard[new]]
            self._ordinal = np.insert(self._ordinal, where, ordinals.astype(np.uint32))
        self._starts.append(self._owned)
        self._indices.append(index)
        self._owned += int(owned.sum())
        if self._owned > np.iinfo(np.uint32).max:
            raise ValueError("more than 2^32 distinct frames in one length group")
        return borrowed
