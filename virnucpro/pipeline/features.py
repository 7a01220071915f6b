"""Per-shard feature files: their format, writer and reader, and the join by frame ID.

A feature file is a safetensors file holding one float32 tensor
``embeddings`` of shape ``[frames, dim]`` and, in its metadata, the frame IDs
(``ids``, a JSON list, row order) plus the model and precision that made it.
safetensors files are memory-mappable and contain no pickle, so kept features
are safe to share and cheap to reopen::

    from safetensors.numpy import load_file          # or safe_open(..., "np")
    import json
    from safetensors import safe_open
    with safe_open("shard-00001.esm.safetensors", "np") as f:
        ids = json.loads(f.metadata()["ids"])
        emb = f.get_tensor("embeddings")              # float32 [len(ids), 2560]
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from virnucpro.io.fasta import read_fasta
from virnucpro.pipeline.checkpoint import atomic_write, write_done
from virnucpro.pipeline.model_kinds import MODEL_KINDS
from virnucpro.pipeline.outputs import RunPaths

logger = logging.getLogger(__name__)

EMBEDDINGS_KEY = "embeddings"
IDS_KEY = "ids"


@dataclass(frozen=True)
class Features:
    """Embeddings of one shard, one row per frame ID."""

    ids: list[str]
    embeddings: np.ndarray  # float32 [len(ids), dim]
    metadata: dict[str, str]


def write_features(path: Path, ids: Sequence[str], embeddings: np.ndarray, info: Mapping[str, Any]) -> None:
    """Write a feature file atomically (no ``.done`` marker; the caller adds it)."""
    from safetensors.numpy import save

    array = np.ascontiguousarray(embeddings, dtype=np.float32)
    if array.shape[0] != len(ids):
        raise ValueError(f"{len(ids)} ids but {array.shape[0]} embedding rows for {path}")
    metadata = {IDS_KEY: json.dumps(list(ids)), **{k: json.dumps(v) for k, v in info.items()}}
    atomic_write(path, save({EMBEDDINGS_KEY: array}, metadata=metadata))


def read_features(path: Path) -> Features:
    """Read a feature file written by :func:`write_features`."""
    from safetensors import safe_open

    with safe_open(str(path), framework="np") as handle:
        metadata = dict(handle.metadata() or {})
        embeddings = handle.get_tensor(EMBEDDINGS_KEY)
    ids = json.loads(metadata.pop(IDS_KEY))
    return Features(ids=ids, embeddings=embeddings, metadata=metadata)


def read_feature_header(path: Path) -> tuple[list[str], tuple[int, ...]]:
    """The frame IDs and the embedding shape of a feature file, without reading the embeddings."""
    from safetensors import safe_open

    with safe_open(str(path), framework="np") as handle:
        ids = json.loads((handle.metadata() or {})[IDS_KEY])
        shape = tuple(handle.get_slice(EMBEDDINGS_KEY).get_shape())
    return ids, shape


def read_shard_sequences(path: Path) -> tuple[list[str], list[str]]:
    """IDs and sequences of a shard FASTA file, in file order."""
    ids: list[str] = []
    seqs: list[str] = []
    for record in read_fasta(path, expect_dna=False):
        ids.append(record.id)
        seqs.append(record.sequence)
    return ids, seqs


def write_feature_result(path: Path, ids: Sequence[str], embeddings: np.ndarray, identity: Mapping[str, Any],
                         dim: int) -> None:
    """Write a worker's feature file atomically, then its ``.done`` marker under ``identity``."""
    write_features(path, ids, embeddings, {"identity": dict(identity), "dim": int(dim)})
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
    parts = [read_features(kind.features(paths, shard)) for kind in MODEL_KINDS]
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
