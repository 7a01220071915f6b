"""``virnucpro train``: features of labelled inputs -> the published MLP recipe -> ``MODEL_DIR``."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from virnucpro import __version__
from virnucpro.log import add_log_file, remove_log_file
from virnucpro.pipeline.checkpoint import atomic_write_text, make_dir, output_dir_lock
from virnucpro.pipeline.run.options import PredictOptions
from virnucpro.sequence import ids
from virnucpro.training.dataset import (
    NEGATIVE,
    POSITIVE,
    FeatureSource,
    LabelledData,
    LabelledInput,
    extract_features,
)
from virnucpro.training.metrics import binary_metrics, format_table
from virnucpro.training.model_dir import write_model_dir
from virnucpro.training.recipe import Recipe, TrainResult, score_frames, train_classifier

__all__ = ["TrainOptions", "main", "split_groups"]

logger = logging.getLogger(__name__)

HELD_OUT_SCORES_NAME = "heldout_scores.tsv"
TRAIN_SUMMARY_NAME = "train_summary.json"
LOG_NAME = "train.log"


@dataclass(frozen=True)
class TrainOptions:
    """Everything ``virnucpro train`` was asked to do.

    Attributes:
        features: models, devices, chunk length and shard size, as for ``predict``
            (``input_path`` / ``output_dir`` are not used).
        work_dir: where each input's features are kept; default ``MODEL_DIR/work``.
    """

    positives: tuple[str, ...]
    negatives: tuple[str, ...]
    model_dir: str
    features: PredictOptions
    recipe: Recipe = Recipe()
    work_dir: str | None = None
    genbank_cds: bool = False


def labelled_inputs(positives: tuple[str, ...], negatives: tuple[str, ...]) -> list[LabelledInput]:
    """The ``--positive`` then the ``--negative`` files, labelled."""
    return [LabelledInput(p, POSITIVE) for p in positives] + [LabelledInput(n, NEGATIVE) for n in negatives]


def split_groups(data: LabelledData, unit: str) -> list[str]:
    """The split unit of each row: the frame, its chunk, or its input sequence (inputs kept apart)."""
    groups = []
    for origin, fid in zip(data.origin.tolist(), data.frame_ids):
        key = fid if unit == "frame" else ids.chunk_of_frame(fid)
        if unit == "sequence":
            key = ids.record_of_chunk(key)
        groups.append(f"{origin}\t{key}")
    return groups


@contextmanager
def _epoch_bars(enabled: bool) -> Iterator[Callable[[int, int, int, float], None] | None]:
    """A progress bar per epoch showing the batch loss (only on a terminal)."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("loss {task.fields[loss]:.4f}"), TimeRemainingColumn(),
                  console=Console(stderr=True)) as progress:
        tasks: dict[int, Any] = {}

        def on_batch(epoch: int, done: int, total: int, loss: float) -> None:
            if epoch not in tasks:
                tasks[epoch] = progress.add_task("", total=total, epoch=epoch, loss=loss)
            progress.update(tasks[epoch], completed=done, loss=loss)

        yield on_batch


def main(options: TrainOptions) -> int:
    """Train a classifier and write ``MODEL_DIR``; returns 0. Errors are ``VirnucproError``."""
    model_dir = Path(options.model_dir)
    make_dir(model_dir)
    handler = add_log_file(model_dir / LOG_NAME)
    try:
        with output_dir_lock(model_dir):
            return _train(options, model_dir)
    finally:
        remove_log_file(handler)


def _train(options: TrainOptions, model_dir: Path) -> int:
    began = time.monotonic()
    recipe = options.recipe
    logger.info("virnucpro %s train -> %s", __version__, model_dir)
    work_dir = Path(options.work_dir) if options.work_dir else model_dir / "work"
    inputs = labelled_inputs(options.positives, options.negatives)
    data = extract_features(inputs, FeatureSource(options.features, work_dir, options.genbank_cds))
    features_seconds = time.monotonic() - began
    with _epoch_bars(not options.features.no_dashboard) as on_batch:
        result = train_classifier(data.features, data.labels, split_groups(data, recipe.split_by), recipe, on_batch)
    probabilities = score_frames(result.model, data.features[result.val_rows])
    val_labels = data.labels[result.val_rows]
    held_out = binary_metrics(val_labels, probabilities[:, 1], predicted=probabilities[:, 1] > probabilities[:, 0])
    logger.info("held-out metrics (best epoch %d):\n%s", result.best_epoch, format_table([("frame", held_out)]))
    write_model_dir(model_dir, result.model, _card(options, data, result), _metrics(held_out, data, result))
    _write_held_out_scores(model_dir / HELD_OUT_SCORES_NAME, data, result, probabilities)
    _write_summary(model_dir / TRAIN_SUMMARY_NAME, data, features_seconds, time.monotonic() - began)
    logger.info("done: model in %s (held-out accuracy %.4f, ROC AUC %s)", model_dir, held_out["accuracy"],
                "NA" if held_out["roc_auc"] is None else f"{held_out['roc_auc']:.4f}")
    return 0


def _card(options: TrainOptions, data: LabelledData, result: TrainResult) -> dict[str, Any]:
    """``model.json``: what the model is and what it was trained on (no time stamps: same bytes each run)."""
    identities = data.models.identities
    model = result.model
    return {
        "architecture": {"input_dim": model.input_dim, "hidden_dim": model.hidden_layer.out_features,
                         "num_classes": model.num_classes, "dropout": model.dropout.p, "bn_eps": model.bn1.eps,
                         "classes": ["others", "virus"]},
        "chunk_length": data.chunk_length,
        "feature_models": {name: dict(identities[name]) for name in ("dnabert", "esm")},
        "precision": data.plan.precision,
        "frame_selection": "genbank-cds" if options.genbank_cds else "predict",
        "recipe": options.recipe.as_dict(),
        "seed": options.recipe.seed,
        "best_epoch": result.best_epoch,
        "epochs_run": len(result.history),
        "class_balance": data.class_balance(),
        "training_inputs": [
            {"path": Path(i.source.path).name, "sha256": i.sha256, "label": "virus" if i.source.label == POSITIVE else "others",
             "frames": len(i.frame_ids)}
            for i in data.inputs
        ],
        "virnucpro_version": __version__,
    }


def _metrics(held_out: dict[str, Any], data: LabelledData, result: TrainResult) -> dict[str, Any]:
    train_labels = data.labels[result.train_rows]
    return {
        "held_out": {"level": "frame", **held_out},
        "best_epoch": result.best_epoch,
        "stopped_early": result.stopped_early,
        "class_balance": {
            "all": data.class_balance(),
            "train": {"virus": int((train_labels == POSITIVE).sum()), "others": int((train_labels == NEGATIVE).sum())},
            "held_out": {"virus": int(held_out["positives"]), "others": int(held_out["negatives"])},
        },
        "history": [
            {"epoch": e.epoch, "learning_rate": e.learning_rate, "train_loss": e.train_loss, "val_loss": e.val_loss,
             **{k: e.val[k] for k in ("accuracy", "precision", "recall", "f1", "roc_auc")}}
            for e in result.history
        ],
    }


def _write_held_out_scores(path: Path, data: LabelledData, result: TrainResult, probabilities: np.ndarray) -> None:
    """``input  frame_id  label  score1  score2`` per held-out frame, scores as ``predict`` prints them."""
    from virnucpro.pipeline.report.results import format_score

    frame_ids = data.frame_ids
    lines = ["input\tframe_id\tlabel\tscore1\tscore2\n"]
    for row, probs in zip(result.val_rows.tolist(), probabilities):
        source = data.inputs[int(data.origin[row])].source
        label = "virus" if data.labels[row] == POSITIVE else "others"
        lines.append(f"{source.path}\t{frame_ids[row]}\t{label}\t{format_score(probs[0])}\t{format_score(probs[1])}\n")
    atomic_write_text(path, "".join(lines))


def _write_summary(path: Path, data: LabelledData, features_seconds: float, seconds: float) -> None:
    summary = {
        "inputs": [
            {"path": i.source.path, "label": "virus" if i.source.label == POSITIVE else "others",
             "work_dir": str(i.work_dir), "frames": len(i.frame_ids), "frames_before_filter": i.frames_before_filter,
             "embedded_shards": i.embedded_shards, "reused_shards": i.reused_shards}
            for i in data.inputs
        ],
        "embedded_shards": sum(i.embedded_shards for i in data.inputs),
        "reused_shards": sum(i.reused_shards for i in data.inputs),
        "devices": data.plan.devices,
        "feature_seconds": round(features_seconds, 3),
        "wall_seconds": round(seconds, 3),
    }
    atomic_write_text(path, json.dumps(summary, indent=1) + "\n")
