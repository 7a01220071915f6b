"""``virnucpro evaluate``: accuracy, precision, recall, F1, ROC AUC and the confusion matrix of any
classifier on labelled inputs, per frame, per chunk and per sequence.

Levels (label = the class of the input file):

* frame: called virus when P(virus) > P(others) (the published per-frame label); AUC on P(virus);
* chunk: a virus chunk as ``chunk_scores.tsv`` calls it (chunk score ``(max + min) / 2`` of its
  frames' P(virus), float32, ``>= --min-score``: :func:`~virnucpro.pipeline.report.per_sequence.is_virus_chunk`,
  the published call at the default 0.5, knife-edge chunks aside); AUC on the chunk score;
* sequence: the ``virus_score`` and ``call`` of ``contig_summary.tsv``
  (:mod:`virnucpro.pipeline.report.per_sequence`, the one owner of that rule): mean chunk score over its
  chunks with a kept frame, called virus when ``>= --min-score`` (0.5).
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from virnucpro import __version__
from virnucpro.pipeline.checkpoint import atomic_write_text, make_dir
from virnucpro.pipeline.report.per_sequence import CALL_VIRUS, call_sequence, is_virus_chunk
from virnucpro.pipeline.report.results import ChunkCall
from virnucpro.pipeline.run.options import PredictOptions
from virnucpro.sequence import ids
from virnucpro.training.dataset import FeatureSource, LabelledData, check_labelled_inputs, extract_features
from virnucpro.training.metrics import binary_metrics, format_table
from virnucpro.training.recipe import score_frames
from virnucpro.training.train import labelled_inputs

__all__ = ["EvaluateOptions", "level_metrics", "main"]

logger = logging.getLogger(__name__)

EVALUATION_JSON = "evaluation.json"
EVALUATION_TABLE = "evaluation.tsv"


@dataclass(frozen=True)
class EvaluateOptions:
    """What ``virnucpro evaluate`` was asked to do (``features.model_path`` / ``model_type``: the classifier)."""

    positives: tuple[str, ...]
    negatives: tuple[str, ...]
    output_dir: str
    features: PredictOptions
    work_dir: str | None = None
    genbank_cds: bool = False
    min_score: float = 0.5


def level_metrics(frame_ids: list[str], origin: np.ndarray, labels: np.ndarray, probabilities: np.ndarray,
                  min_score: float = 0.5) -> dict[str, dict[str, Any]]:
    """Metrics per frame, per chunk and per sequence.

    Chunk calls and scores, sequence scores and calls are those of ``predict``'s
    tables, computed by their one owner (:class:`~virnucpro.pipeline.report.results.ChunkCall`,
    :func:`~virnucpro.pipeline.report.per_sequence.call_sequence`). A sequence without a
    kept frame has no frame here, so no score, and is not counted (``predict``
    calls it ``no_call``).

    Args:
        frame_ids: kept frame IDs; frames of one chunk are adjacent, as predict writes them.
        origin: index of the input file of each frame (equal IDs in two inputs stay apart).
        labels: class of each frame's input (1 = virus).
        probabilities: ``[N, 2]`` float32 (others, virus) as :func:`score_frames` gives them.
        min_score: virus chunk and sequence call threshold (``--min-score``).
    """
    virus, others = probabilities[:, 1].astype(np.float64), probabilities[:, 0].astype(np.float64)
    result = {"frame": binary_metrics(labels, virus, predicted=virus > others)}
    chunks: dict[tuple[int, str], list[int]] = {}
    for row, (o, fid) in enumerate(zip(origin.tolist(), frame_ids)):
        chunks.setdefault((o, ids.chunk_of_frame(fid)), []).append(row)
    chunk_label, chunk_score, chunk_call = [], [], []
    sequences: dict[tuple[int, str], list[ChunkCall]] = {}
    sequence_label: dict[tuple[int, str], int] = {}
    for (o, chunk), rows in chunks.items():
        call = ChunkCall(chunk, float(others[rows].max()), float(virus[rows].max()), float(virus[rows].min()),
                         len(rows))
        chunk_label.append(labels[rows[0]])
        chunk_score.append(float(call.chunk_score))
        chunk_call.append(is_virus_chunk(call.chunk_score, min_score))
        key = (o, ids.record_of_chunk(chunk))
        sequences.setdefault(key, []).append(call)
        sequence_label[key] = int(labels[rows[0]])
    result["chunk"] = binary_metrics(np.array(chunk_label), np.array(chunk_score), predicted=np.array(chunk_call))
    seq_calls = [call_sequence(calls, min_score) for calls in sequences.values()]
    result["sequence"] = binary_metrics(
        np.array([sequence_label[key] for key in sequences]),
        np.array([np.nan if c.virus_score is None else float(c.virus_score) for c in seq_calls]),
        predicted=np.array([c.call == CALL_VIRUS for c in seq_calls]),
    )
    return result


def main(options: EvaluateOptions) -> int:
    """Score labelled inputs with a classifier and write ``evaluation.json`` and ``evaluation.tsv``."""
    from virnucpro.models.classifier import load_classifier
    from virnucpro.pipeline.run.setup import resolve_models

    check_labelled_inputs(labelled_inputs(options.positives, options.negatives))
    out = Path(options.output_dir)
    make_dir(out)
    # Resolving with the classifier first refuses one trained on other feature models or chunk length.
    models = resolve_models(options.features)
    classifier = load_classifier(models.classifier_path)
    work_dir = Path(options.work_dir) if options.work_dir else out / "work"
    data: LabelledData = extract_features(labelled_inputs(options.positives, options.negatives),
                                          FeatureSource(options.features, work_dir, options.genbank_cds))
    probabilities = score_frames(classifier, data.features)
    metrics = level_metrics(data.frame_ids, data.origin, data.labels, probabilities, options.min_score)
    table = format_table(list(metrics.items()))
    report = {
        "classifier": models.identities["classifier"],
        "feature_models": {k: models.identities[k] for k in ("dnabert", "esm")},
        "chunk_length": data.chunk_length,
        "min_score": options.min_score,
        "inputs": [{"path": i.source.path, "label": "virus" if i.source.label else "others", "frames": len(i.frame_ids)}
                   for i in data.inputs],
        "metrics": metrics,
        "virnucpro_version": __version__,
    }
    atomic_write_text(out / EVALUATION_JSON, json.dumps(report, indent=1) + "\n")
    atomic_write_text(out / EVALUATION_TABLE, table)
    logger.info("evaluation of %s:\n%s", models.identities["classifier"]["name"], table)
    sys.stdout.write(table)
    return 0
