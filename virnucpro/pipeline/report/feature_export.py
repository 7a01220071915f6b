"""``virnucpro features export``: a run's kept embeddings as plain NumPy arrays or TSV.

Input: a ``virnucpro predict --keep-features`` output directory, i.e.
``DIR/work/features/shard-NNNNN.{dnabert,esm}.safetensors`` (format in
:mod:`virnucpro.pipeline.stages.feature_files`) and the shard index ``DIR/work/translate.json``.

Output, in ``OUTDIR`` (default ``DIR/features``), per model (``dnabert`` =
DNABERT-S, ``esm`` = ESM-2):

``<model>_embeddings.npy`` (``--format npy``, the default)
    A standard ``.npy`` file: little-endian float32, C order, shape
    ``[N, dim]`` (N kept frames; dim 768 for DNABERT-S, 2560 for ESM-2 3B).
    Open it without reading it all with ``np.load(path, mmap_mode="r")``.
``<model>_ids.txt``
    N lines; line ``i`` is the frame ID of row ``i``:
    ``<sequence id>_chunk_<k><frame>``, frame ``F1``..``F3`` / ``R1``..``R3``,
    the same IDs as ``prediction_results.txt``.
``<model>_embeddings.tsv`` (``--format tsv``, instead of the two above)
    A header ``frame_id  <model>_0 .. <model>_<dim-1>``, then one line per
    frame: the ID and its ``dim`` values as ``%.9g`` (exact for float32).
    Convenient for R or pandas on small runs; large (about 11 bytes per value).

Row order is the order of ``prediction_results.txt``: shard 1, 2, ... and,
within a shard, the input order of the frames. Every frame has its row, also
one whose embedding the run reused from an identical frame (kept feature files
hold each distinct sequence once; export writes it for every frame). Both models list the same IDs
in the same order, so row ``i`` of both arrays is the same frame.

Export streams: one shard's embeddings are in memory at a time; each output
file is written to a temporary name and renamed into place (so a failed
export never leaves a half-written file under the final name).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from virnucpro.errors import InputError, OutputError
from virnucpro.pipeline.checkpoint import atomic_write, read_done
from virnucpro.pipeline.model_kinds import MODEL_KINDS, model_kind
from virnucpro.pipeline.outputs import RunPaths, shard_name
from virnucpro.pipeline.stages.feature_files import read_feature_header, read_shard_features
from virnucpro.pipeline.stages.work_files import read_shard_index

logger = logging.getLogger(__name__)

MODELS = tuple(kind.name for kind in MODEL_KINDS)
FORMATS = ("npy", "tsv")
DEFAULT_SUBDIR = "features"


@dataclass(frozen=True)
class FeatureShard:
    """One kept feature file: its shard number, path, frames (rows once reused rows are
    resolved) and embedding size, and the run and model it belongs to."""

    index: int
    path: Path
    rows: int
    dim: int
    paths: RunPaths
    model: str


def _shard_index(paths: RunPaths) -> list[tuple[int, int]]:
    """``(shard, frames)`` pairs from the translate index."""
    try:
        return [(s.index, s.frames) for s in read_shard_index(paths.translate_index).shards]
    except FileNotFoundError:
        raise InputError(f"{paths.root} is not a virnucpro predict output directory "
                         f"(no {paths.translate_index.relative_to(paths.root)})") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"cannot read {paths.translate_index}: {exc}") from None


def _header(path: Path) -> tuple[list[str], tuple[int, ...], int]:
    try:
        return read_feature_header(path)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is one line
        raise InputError(f"cannot read {path}: {exc}") from None


def find_feature_shards(run_dir: str | Path, model: str) -> list[FeatureShard]:
    """Every kept feature file of ``model``, in shard order, checked against the shard index.

    Raises:
        InputError: the run kept no features (re-run with ``--keep-features``),
            a shard's file is missing or incomplete, or the files disagree.
    """
    kind = model_kind(model)
    paths = RunPaths(Path(run_dir))
    shards = _shard_index(paths)
    if not any(kind.features(paths, i).is_file() for i, _ in shards):
        raise InputError(
            f"{paths.root} has no kept {model} features (no {paths.features_dir}/shard-*.{model}.safetensors); "
            "re-run the same predict command with --keep-features added (finished scores are kept, "
            "only the embeddings are computed)"
        )
    found: list[FeatureShard] = []
    dim: int | None = None
    for index, frames in shards:
        path = kind.features(paths, index)
        marker = read_done(path)
        if not path.is_file() or marker is None or marker.get("size") != path.stat().st_size:
            raise InputError(f"{path} is missing or incomplete (did the run finish?); "
                             "resume the run with --keep-features to complete it")
        ids, shape, reused = _header(path)
        if len(shape) != 2 or shape[0] != len(ids) or shape[0] + reused != frames:
            raise InputError(f"{path}: {shape[0] if shape else 0} rows, {len(ids)} IDs, {reused} reused, "
                             f"{frames} frames in the shard index")
        if dim is not None and shape[1] != dim:
            raise InputError(f"{path}: embedding size {shape[1]}, other shards have {dim}")
        dim = shape[1]
        found.append(FeatureShard(index, path, frames, shape[1], paths, model))
    return found


def _shard_arrays(shards: Sequence[FeatureShard]) -> Iterator[tuple[list[str], np.ndarray]]:
    for shard in shards:
        try:
            features = read_shard_features(shard.paths, model_kind(shard.model), shard.index)
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read the {shard.model} features of {shard_name(shard.index)}: {exc}; "
                             "resume the run with --keep-features to complete it") from None
        yield features.ids, np.ascontiguousarray(features.embeddings, dtype="<f4")
        logger.debug("exported %s (%d rows)", shard_name(shard.index), shard.rows)


def _write_npy(shards: Sequence[FeatureShard], array_path: Path, ids_path: Path) -> None:
    rows = sum(s.rows for s in shards)
    dim = shards[0].dim

    def write_both(ids_handle: IO[bytes]) -> None:
        def write_array(handle: IO[bytes]) -> None:
            np.lib.format.write_array_header_2_0(
                handle, {"descr": np.dtype("<f4").str, "fortran_order": False, "shape": (rows, dim)}
            )
            written = 0
            for ids, block in _shard_arrays(shards):
                handle.write(block.tobytes(order="C"))
                ids_handle.write("".join(f"{i}\n" for i in ids).encode("utf-8"))
                written += block.shape[0]
            if written != rows:
                raise InputError(f"feature files changed during the export ({written} rows, expected {rows})")

        atomic_write(array_path, write_array)

    # Both files stream from one pass over the shards; each appears under its name only when complete.
    atomic_write(ids_path, write_both)


def _write_tsv(shards: Sequence[FeatureShard], model: str, path: Path) -> None:
    dim = shards[0].dim

    def write(handle: IO[bytes]) -> None:
        text = io.TextIOWrapper(handle, encoding="utf-8", newline="\n")
        text.write("frame_id\t" + "\t".join(f"{model}_{j}" for j in range(dim)) + "\n")
        for ids, block in _shard_arrays(shards):
            values = io.StringIO()
            np.savetxt(values, block, fmt="%.9g", delimiter="\t")
            for frame_id, line in zip(ids, values.getvalue().splitlines()):
                text.write(f"{frame_id}\t{line}\n")
        text.flush()
        text.detach()

    atomic_write(path, write)


def export_features(run_dir: str | Path, out_dir: str | Path | None = None, fmt: str = "npy",
                    models: Sequence[str] = MODELS) -> list[Path]:
    """Export the kept embeddings of a run (see the module docstring for the files).

    Args:
        run_dir: a ``virnucpro predict --keep-features`` output directory.
        out_dir: where to write; ``DIR/features`` by default (created if missing).
        fmt: ``npy`` (array + IDs) or ``tsv``.
        models: ``dnabert``, ``esm`` or both.

    Returns:
        The files written.

    Raises:
        InputError: no kept features, or incomplete ones.
        OutputError: an output cannot be written.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}")
    run_dir = Path(run_dir)
    target = Path(out_dir) if out_dir is not None else run_dir / DEFAULT_SUBDIR
    plan = {model: find_feature_shards(run_dir, model) for model in models}  # check everything first
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create directory {target}: {exc.strerror or exc}") from None
    written: list[Path] = []
    for model, shards in plan.items():
        rows, dim = sum(s.rows for s in shards), shards[0].dim
        logger.info("%s: %d frame(s) x %d values from %d shard(s)", model, rows, dim, len(shards))
        if fmt == "npy":
            array_path, ids_path = target / f"{model}_embeddings.npy", target / f"{model}_ids.txt"
            _write_npy(shards, array_path, ids_path)
            written += [array_path, ids_path]
        else:
            path = target / f"{model}_embeddings.tsv"
            _write_tsv(shards, model, path)
            written.append(path)
    return written


def export_sample_features(root: str | Path, sample: str | None = None, out_dir: str | Path | None = None,
                           fmt: str = "npy", models: Sequence[str] = MODELS) -> list[Path]:
    """:func:`export_features` for every finished sample of a many-sample DIR (or ``sample``).

    Each sample's files go to ``DIR/<sample>/features/``, or with ``out_dir`` to
    ``out_dir/<sample>/`` (``out_dir`` itself when one ``sample`` is picked), so every
    sample's files keep the names of a one-input run's export.
    """
    from virnucpro.pipeline.report.sample_dirs import for_each_sample, pick_samples

    chosen = pick_samples(root, sample, "features export")

    def target(name: str) -> Path | None:
        if out_dir is None:
            return None
        return Path(out_dir) if sample is not None else Path(out_dir) / name

    written = for_each_sample(chosen, lambda s: export_features(s.folder, target(s.name), fmt, models),
                              "features export")
    return [path for paths in written for path in paths]
