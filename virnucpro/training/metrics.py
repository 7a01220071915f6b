"""Binary classification metrics, written out with numpy (class 1 = virus = positive)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["binary_metrics", "format_table", "roc_auc"]


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the ROC curve: the probability that a random positive scores above a random
    negative, ties counting one half (Mann-Whitney U with mid-ranks). None with one class only."""
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if positives == 0 or negatives == 0:
        return None
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    ranks = np.empty(len(scores), dtype=np.float64)
    # Mid-rank of each run of equal scores (1-based ranks).
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    ends = np.r_[starts[1:], len(scores)]
    for start, end in zip(starts, ends):
        ranks[order[start:end]] = (start + 1 + end) / 2.0
    u = ranks[labels].sum() - positives * (positives + 1) / 2.0
    return float(u / (positives * negatives))


def binary_metrics(labels: np.ndarray, scores: np.ndarray, predicted: np.ndarray | None = None,
                   threshold: float = 0.5) -> dict[str, Any]:
    """Accuracy, precision, recall, F1, ROC AUC and the confusion matrix.

    Args:
        labels: true classes, 1 = positive (virus), 0 = negative.
        scores: the positive-class score of each item (for ROC AUC, and the calls when
            ``predicted`` is not given).
        predicted: the calls (1/0); default ``scores >= threshold``.
        threshold: see ``predicted``.

    Returns:
        A JSON-ready dict; ratios that divide by zero are None. ``confusion_matrix``
        is ``[[TN, FP], [FN, TP]]`` (rows: true class 0, 1; columns: called 0, 1).
    """
    y = np.asarray(labels).astype(bool)
    calls = (np.asarray(scores) >= threshold) if predicted is None else np.asarray(predicted).astype(bool)
    tp = int((y & calls).sum())
    tn = int((~y & ~calls).sum())
    fp = int((~y & calls).sum())
    fn = int((y & ~calls).sum())
    total = tp + tn + fp + fn
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None
    return {
        "n": total,
        "positives": tp + fn,
        "negatives": tn + fp,
        "accuracy": (tp + tn) / total if total else None,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "roc_auc": roc_auc(y, np.asarray(scores)),
        "confusion_matrix": [[tn, fp], [fn, tp]],
    }


def format_table(rows: Sequence[tuple[str, dict[str, Any]]]) -> str:
    """A plain-text table of metrics, one line per ``(level, metrics)``."""
    header = ("level", "n", "accuracy", "precision", "recall", "f1", "roc_auc", "TN", "FP", "FN", "TP")

    def cell(value: Any) -> str:
        return "NA" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)

    lines = ["\t".join(header)]
    for level, m in rows:
        (tn, fp), (fn, tp) = m["confusion_matrix"]
        values = (level, m["n"], m["accuracy"], m["precision"], m["recall"], m["f1"], m["roc_auc"], tn, fp, fn, tp)
        lines.append("\t".join(cell(v) for v in values))
    return "\n".join(lines) + "\n"
