"""Identical frames are embedded once per run: which frame reuses which embedding.

Read sets repeat reads, and two frames whose DNA differs can still translate
to the same protein, so each model kind is deduplicated on the sequence it
embeds (DNABERT-S on the nucleotides, ESM-2 on the protein). While the
translate stage writes a length group's shards it keeps a 128-bit BLAKE2b
digest of every frame's sequence per kind (never the sequences); as each
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

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DIGEST_BYTES = 16


def sequence_digest(sequence: str) -> bytes:
    """The 16-byte digest frames are compared by (equal digests: the same sequence)."""
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
    gives that shard. Memory: 24 bytes per distinct sequence of the group (its
    digest, owning shard and feature row), no more than the whole-group digests.
    """

    def __init__(self) -> None:
        self._known = np.empty(0, dtype=f"V{DIGEST_BYTES}")  # sorted digests of owned frames
        self._shard = np.empty(0, dtype=np.int64)  # their shard index
        self._row = np.empty(0, dtype=np.int64)  # their row in that shard's feature file

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
                source = (int(self._shard[at[u]]), int(self._row[at[u]]))
            else:
                source = (index, int(feature_row[first_in_shard[u]]))
            borrowed.append(Borrowed(int(position), *source))
        new = ~found
        if new.any():
            # uniq is sorted and at[new] are its insertion points: a linear merge, no re-sort.
            where = at[new]
            self._known = np.insert(self._known, where, uniq[new])
            self._shard = np.insert(self._shard, where, index)
            self._row = np.insert(self._row, where, feature_row[first_in_shard[new]])
        return borrowed
