"""The published training recipe for the VirNucPro MLP, deterministic.

Defaults are the published ones: features -> 512 -> BatchNorm -> ReLU ->
Dropout 0.5 -> 2, cross-entropy, SGD (lr 2e-4, momentum 0.9), learning rate
x0.85 every 10 epochs, batch 32, up to 200 epochs, early stopping with
patience 5 on the held-out loss (the weights of the best epoch are kept),
10% held out, seed 42.

Determinism: the split comes from a seeded numpy generator, the batch order
from a seeded ``torch.Generator``, dropout from a forked, seeded global RNG;
training runs on the CPU, single-threaded, with
``torch.use_deterministic_algorithms``. The same features, recipe and seed
therefore give the same weights, bit for bit, on the same machine.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from virnucpro.errors import InputError
from virnucpro.models.classifier import MLPClassifier
from virnucpro.training.metrics import binary_metrics

__all__ = ["SPLIT_UNITS", "EpochReport", "Recipe", "TrainResult", "held_out_split", "score_frames", "train_classifier"]

logger = logging.getLogger(__name__)

#: What the held-out split keeps together: single frames (published), chunks, or whole input sequences.
SPLIT_UNITS = ("frame", "chunk", "sequence")
CLASS_WEIGHTS = ("none", "balanced")


@dataclass(frozen=True)
class Recipe:
    """Every training choice (recorded in ``model.json``)."""

    learning_rate: float = 2e-4
    momentum: float = 0.9
    lr_step_epochs: int = 10
    lr_gamma: float = 0.85
    batch_size: int = 32
    max_epochs: int = 200
    patience: int = 5
    validation_fraction: float = 0.1
    split_by: str = "frame"
    class_weight: str = "none"
    hidden_dim: int = 512
    dropout: float = 0.5
    seed: int = 42

    def as_dict(self) -> dict[str, Any]:
        return {"optimizer": "SGD", "loss": "cross_entropy", "lr_schedule": "step", **asdict(self)}


@dataclass(frozen=True)
class EpochReport:
    """One epoch: mean training loss and the held-out loss and metrics."""

    epoch: int
    learning_rate: float
    train_loss: float
    val_loss: float
    val: dict[str, Any]


@dataclass
class TrainResult:
    """The trained model (best epoch's weights) and what training saw."""

    model: MLPClassifier
    train_rows: np.ndarray
    val_rows: np.ndarray
    history: list[EpochReport] = field(default_factory=list)
    best_epoch: int = 0
    stopped_early: bool = False


def held_out_split(labels: np.ndarray, groups: Sequence[str], fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (train, held out): per class, ``fraction`` of its groups, at least one, chosen at random.

    Raises:
        InputError: a class has fewer than two groups (nothing to hold out, or nothing left to train on).
    """
    rng = np.random.default_rng(seed)
    group_ids = np.unique(np.asarray(groups, dtype=object), return_inverse=True)[1]
    val_mask = np.zeros(len(labels), dtype=bool)
    for cls, name in ((1, "virus"), (0, "others")):
        rows = np.flatnonzero(labels == cls)
        members = np.unique(group_ids[rows])
        if len(members) < 2:
            raise InputError(f"the {name} inputs give {len(members)} split unit(s); the held-out split needs at "
                             "least 2 per class (more sequences, or --split-by frame)")
        take = min(len(members) - 1, max(1, round(fraction * len(members))))
        chosen = rng.permutation(members)[:take]
        val_mask[rows[np.isin(group_ids[rows], chosen)]] = True
    return np.flatnonzero(~val_mask), np.flatnonzero(val_mask)


def score_frames(model: MLPClassifier, features: np.ndarray) -> np.ndarray:
    """``[N, 2]`` float32 probabilities (others, virus) exactly as ``predict`` computes them
    (float64 classifier, ties made exact by ``results.probabilities_from_logits``)."""
    import torch

    from virnucpro.pipeline.report.results import probabilities_from_logits

    scorer = MLPClassifier(model.input_dim, model.hidden_layer.out_features, model.num_classes,
                           bn_eps=model.bn1.eps).double().eval()
    scorer.load_state_dict(model.state_dict())
    with torch.inference_mode():
        logits = scorer(torch.from_numpy(np.ascontiguousarray(features)).double()).numpy()
    return probabilities_from_logits(logits)


def train_classifier(features: np.ndarray, labels: np.ndarray, groups: Sequence[str], recipe: Recipe,
                     on_batch: Callable[[int, int, int, float], None] | None = None) -> TrainResult:
    """Train the MLP on ``features`` / ``labels`` (1 = virus) with ``recipe``.

    Args:
        groups: the split unit of each row (frame, chunk or sequence ID; see :data:`SPLIT_UNITS`).
        on_batch: called after each batch with ``(epoch, batches done, batches per epoch, loss)``.
    """
    import torch
    from torch import nn

    train_rows, val_rows = held_out_split(labels, groups, recipe.validation_fraction, recipe.seed)
    x_train = torch.from_numpy(np.ascontiguousarray(features[train_rows], dtype=np.float32))
    y_train = torch.from_numpy(labels[train_rows].astype(np.int64))
    x_val = torch.from_numpy(np.ascontiguousarray(features[val_rows], dtype=np.float32))
    y_val = torch.from_numpy(labels[val_rows].astype(np.int64))

    weight = None
    if recipe.class_weight == "balanced":
        counts = torch.bincount(y_train, minlength=2).double()
        weight = (counts.sum() / (2.0 * counts.clamp(min=1))).float()
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(recipe.seed)
            model = MLPClassifier(input_dim=features.shape[1], hidden_dim=recipe.hidden_dim)
            model.dropout.p = recipe.dropout
            result = _fit(model, x_train, y_train, x_val, y_val, recipe, nn.CrossEntropyLoss(weight=weight), on_batch)
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
    result.train_rows, result.val_rows = train_rows, val_rows
    return result


def _fit(model: MLPClassifier, x_train: Any, y_train: Any, x_val: Any, y_val: Any, recipe: Recipe, loss_fn: Any,
         on_batch: Callable[[int, int, int, float], None] | None) -> TrainResult:
    import torch

    optimizer = torch.optim.SGD(model.parameters(), lr=recipe.learning_rate, momentum=recipe.momentum)
    schedule = torch.optim.lr_scheduler.StepLR(optimizer, step_size=recipe.lr_step_epochs, gamma=recipe.lr_gamma)
    order_rng = torch.Generator().manual_seed(recipe.seed)
    batches = math.ceil(len(y_train) / recipe.batch_size)
    result = TrainResult(model, np.zeros(0, np.int64), np.zeros(0, np.int64))
    best_loss, best_state, waited = math.inf, None, 0
    for epoch in range(1, recipe.max_epochs + 1):
        model.train()
        order = torch.randperm(len(y_train), generator=order_rng)
        total = 0.0
        for b in range(batches):
            rows = order[b * recipe.batch_size:(b + 1) * recipe.batch_size]
            if len(rows) < 2:  # BatchNorm cannot train on one row; the published loader would crash here
                continue
            optimizer.zero_grad()
            loss = loss_fn(model(x_train[rows]), y_train[rows])
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(rows)
            if on_batch is not None:
                on_batch(epoch, b + 1, batches, float(loss.detach()))
        learning_rate = optimizer.param_groups[0]["lr"]
        schedule.step()
        model.eval()
        with torch.inference_mode():
            logits = model(x_val)
            val_loss = float(loss_fn(logits, y_val))
            scores = torch.softmax(logits, dim=1)[:, 1].numpy()
        metrics = binary_metrics(y_val.numpy(), scores)
        report = EpochReport(epoch, learning_rate, total / max(1, len(y_train)), val_loss, metrics)
        result.history.append(report)
        logger.info("epoch %d: lr %.3g, train loss %.4f, held-out loss %.4f, accuracy %.4f, F1 %s, ROC AUC %s",
                    epoch, learning_rate, report.train_loss, val_loss, metrics["accuracy"],
                    _fmt(metrics["f1"]), _fmt(metrics["roc_auc"]))
        if val_loss < best_loss:
            best_loss, waited, result.best_epoch = val_loss, 0, epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            waited += 1
            if waited >= recipe.patience:
                result.stopped_early = True
                logger.info("early stop after epoch %d: no better held-out loss for %d epochs (best: epoch %d)",
                            epoch, recipe.patience, result.best_epoch)
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return result


def _fmt(value: float | None) -> str:
    return "NA" if value is None else f"{value:.4f}"
