"""Per-shard feature files: their format, writer and reader, and the join by frame ID.

A feature file is a safetensors file holding one float32 tensor
``embeddings`` of shape ``[rows, dim]`` and, in its metadata, the frame IDs
(``ids``, a JSON list, row order) plus the model and precision that made it.
A frame whose sequence occurred earlier in the run is not embedded again
(:mod:`virnucpro.pipeline.stages.reuse`): it has no row, and ``reused`` (a JSON list
of ``[frame_id, position in the shard, source shard, source row]``) says where
its row is. :func:`read_shard_features` puts every frame of a shard back in
shard order; use it (or ``virnucpro features export``) rather than reading a
file alone.
safetensors files are memory-mappable and contain no pickle, so kept features
are safe to share and cheap to reopen::

    from safetensors.numpy import load_file          # or safe_open(..., "np")
    import json
    from safetensors import safe_open
    with safe_open("shard-00001.esm.safetensors", "np") as f:
        ids = json.loads(f.metadata()["ids"])
        emb = f.get_tensor("embeddings")              # float32 [len(ids), 2560]
        reused = json.loads(f.metadata().get("reused", "[]"))
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from virnucpro.io.fasta import read_fasta
from virnucpro.pipeline.checkpoint import atomic_write, write_done
from virnucpro.pipeline.model_kinds import MODEL_KINDS, ModelKind
from virnucpro.pipeline.outputs import RunPaths
from virnucpro.pipeline.stages.reuse import Borrowed
from virnucpro.pipeline.stages.work_files import read_reuse

logger = logging.getLogger(__name__)

EMBEDDINGS_KEY = "embeddings"
IDS_KEY = "ids"
REUSED_KEY = "reused"


@dataclass(frozen=True)
class ReusedRow:
    """A frame of a feature file's shard without a row of its own: its row is row
    ``source_row`` of shard ``source_shard``'s feature file (same model)."""

    frame_id: str
    position: int  # in the shard, 0-based
    source_shard: int
    source_row: int


@dataclass(frozen=True)
class Features:
    """Embeddings of one shard, one row per frame ID (``reused``: the shard's frames whose
    rows are in another file; empty once :func:`read_shard_features` resolved them)."""

    ids: list[str]
    embeddings: np.ndarray  # float32 [len(ids), dim]
    metadata: dict[str, str]
    reused: list[ReusedRow] = field(default_factory=list)


def safetensors_header(metadata: Mapping[str, str], rows: int, dim: int) -> bytes:
    """The length prefix and JSON header of a one-tensor (``embeddings``, F32 ``[rows, dim]``)
    safetensors file, with the metadata keys sorted: the same bytes from the same inputs in
    any process (the safetensors library orders metadata by a per-process hash map).

    Layout (the safetensors format): 8-byte little-endian header length, the JSON header
    padded with spaces to a multiple of 8 bytes, then the tensor's bytes.
    """
    header = {
        "__metadata__": {key: metadata[key] for key in sorted(metadata)},
        EMBEDDINGS_KEY: {"dtype": "F32", "shape": [rows, dim], "data_offsets": [0, rows * dim * 4]},
    }
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text


def write_features(path: Path, ids: Sequence[str], embeddings: np.ndarray, info: Mapping[str, Any],
                   reused: Sequence[ReusedRow] = ()) -> None:
    """Write a feature file atomically (no ``.done`` marker; the caller adds it).

    Byte-reproducible: the header is written here with sorted metadata keys
    (:func:`safetensors_header`), so the same ids, embeddings and info give the same file in
    any process. Files written by ``safetensors.numpy.save`` (earlier versions) read the same.
    """
    array = np.ascontiguousarray(embeddings, dtype="<f4")
    if array.ndim != 2 or array.shape[0] != len(ids):
        raise ValueError(f"{len(ids)} ids but embedding rows of shape {array.shape} for {path}")
    metadata = {IDS_KEY: json.dumps(list(ids)), **{k: json.dumps(v) for k, v in info.items()}}
    if reused:
        metadata[REUSED_KEY] = json.dumps([[r.frame_id, r.position, r.source_shard, r.source_row] for r in reused])
    header = safetensors_header(metadata, array.shape[0], array.shape[1])

    def write(handle: IO[bytes]) -> None:
        handle.write(header)
        if array.size:
            handle.write(array.data.cast("B"))

    atomic_write(path, write)


def _reused_rows(metadata: dict[str, str]) -> list[ReusedRow]:
    return [ReusedRow(str(f), int(p), int(s), int(r)) for f, p, s, r in json.loads(metadata.pop(REUSED_KEY, "[]"))]


def read_features(path: Path) -> Features:
    """Read one feature file written by :func:`write_features` (its reused rows unresolved)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="np") as handle:
        metadata = dict(handle.metadata() or {})
        embeddings = handle.get_tensor(EMBEDDINGS_KEY)
    ids = json.loads(metadata.pop(IDS_KEY))
    return Features(ids=ids, embeddings=embeddings, metadata=metadata, reused=_reused_rows(metadata))


def read_feature_header(path: Path) -> tuple[list[str], tuple[int, ...], int]:
    """The frame IDs and the embedding shape of a feature file, and how many of its shard's
    frames it reuses from elsewhere, without reading the embeddings."""
    from safetensors import safe_open

    with safe_open(str(path), framework="np") as handle:
        metadata = dict(handle.metadata() or {})
        shape = tuple(handle.get_slice(EMBEDDINGS_KEY).get_shape())
    return json.loads(metadata[IDS_KEY]), shape, len(_reused_rows(metadata))


def reuse_sources(paths: RunPaths, kind: ModelKind, shard: int) -> set[int]:
    """The other shards whose ``kind`` feature files hold rows of ``shard`` (from its reuse plan;
    empty when the plan is missing)."""
    try:
        return {b.source_shard for b in read_reuse(kind.reuse(paths, shard))} - {shard}
    except (OSError, ValueError):
        return set()


def read_shard_features(paths: RunPaths, kind: ModelKind, shard: int) -> Features:
    """Every frame of ``shard`` embedded by ``kind``, in shard order: the shard's own rows and
    those it reuses from identical frames (read row by row from the source files).

    Raises:
        ValueError: a reused row is not in its source file.
        OSError: a feature file is missing or unreadable.
    """
    from safetensors import safe_open

    own = read_features(kind.features(paths, shard))
    if not own.reused:
        return own
    total = len(own.ids) + len(own.reused)
    dim = own.embeddings.shape[1]
    embeddings = np.empty((total, dim), dtype=np.float32)
    ids: list[str] = [""] * total
    taken = np.zeros(total, dtype=bool)
    for row in own.reused:
        if not 0 <= row.position < total or taken[row.position]:
            raise ValueError(f"{kind.features(paths, shard).name}: reused row at position {row.position} is invalid")
        taken[row.position] = True
        ids[row.position] = row.frame_id
    positions = np.flatnonzero(~taken)
    embeddings[positions] = own.embeddings
    for position, frame_id in zip(positions.tolist(), own.ids):
        ids[position] = frame_id
    by_source: dict[int, list[ReusedRow]] = {}
    for row in own.reused:
        by_source.setdefault(row.source_shard, []).append(row)
    for source, rows in sorted(by_source.items()):
        if source == shard:
            block = own.embeddings
            for row in rows:
                _check_source_row(row, block.shape[0], kind.features(paths, source))
                embeddings[row.position] = block[row.source_row]
            continue
        path = kind.features(paths, source)
        with safe_open(str(path), framework="np") as handle:
            rows_in_file = handle.get_slice(EMBEDDINGS_KEY)
            count = rows_in_file.get_shape()[0]
            for row in rows:
                _check_source_row(row, count, path)
                embeddings[row.position] = rows_in_file[row.source_row : row.source_row + 1][0]
    return Features(ids=ids, embeddings=embeddings, metadata=own.metadata)


def _check_source_row(row: ReusedRow, count: int, path: Path) -> None:
    if not 0 <= row.source_row < count:
        raise ValueError(f"{row.frame_id} reuses row {row.source_row} of {path.name}, which has {count} rows")


def read_shard_sequences(path: Path) -> tuple[list[str], list[str]]:
    """IDs and sequences of a shard FASTA file, in file order."""
    ids: list[str] = []
    seqs: list[str] = []
    for record in read_fasta(path, expect_dna=False):
        ids.append(record.id)
        seqs.append(record.sequence)
    return ids, seqs


def write_feature_result(path: Path, ids: Sequence[str], embeddings: np.ndarray, identity: Mapping[str, Any],
                         dim: int, reused: Sequence[tuple[str, Borrowed]] = ()) -> None:
    """Write a worker's feature file atomically, then its ``.done`` marker under ``identity``
    (``reused``: the shard's frames not embedded, with their reuse plan entries)."""
    rows = [ReusedRow(frame_id, b.row, b.source_shard, b.source_row) for frame_id, b in reused]
    write_features(path, ids, embeddings, {"identity": dict(identity), "dim": int(dim)}, rows)
    write_done(path, identity, frames=len(ids))
    logger.debug("wrote %s (%d frames)", path, len(ids))


def shard_feature_matrix(paths: RunPaths, shard: int) -> tuple[list[str], np.ndarray]:
    """One shard's frame IDs (shard order) and their joined features ``[frames, sum of dims]``,
    the model kinds' blocks side by side in :data:`~virnucpro.pipeline.model_kinds.MODEL_KINDS` order.

    The one reader of a shard's features for the classifier (``predict``'s score stage and
    ``train``), so both see the same rows.

    Raises:
        ValueError: a feature file does not match the shard's frames.
    """
    frame_ids, _ = read_shard_sequences(paths.shard_dna(shard))
    parts = [read_shard_features(paths, kind, shard) for kind in MODEL_KINDS]
    return frame_ids, join_by_id(frame_ids, *parts)


def join_by_id(frame_ids: Sequence[str], *parts: Features) -> np.ndarray:
    """Concatenate feature blocks row-wise matched BY FRAME ID, in ``frame_ids`` order.

    Raises:
        ValueError: a frame is missing from, or repeated in, one of the parts.
    """
    blocks = []
    for part in parts:
        index = {fid: row for row, fid in enumerate(part.ids)}
        if len(index) != len(part.ids):
            raise ValueError("a feature file repeats a frame ID")
        missing = [fid for fid in frame_ids if fid not in index]
        if missing or len(index) != len(frame_ids):
            raise ValueError(
                f"feature file does not match its shard: {len(missing)} frame(s) missing"
                + (f", e.g. {missing[0]}" if missing else f"; {len(index)} rows for {len(frame_ids)} frames")
            )
        blocks.append(part.embeddings[[index[fid] for fid in frame_ids]])
    return np.concatenate(blocks, axis=1)
