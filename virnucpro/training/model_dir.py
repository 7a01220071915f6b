"""The ``MODEL_DIR`` a ``virnucpro train`` run writes, and reading it back.

::

    MODEL_DIR/
      model.safetensors   the MLP's tensors (state-dict names of MLPClassifier), no pickle
      model.json          dimensions, chunk length, feature models (name + sha256 + dim),
                          recipe, seed, training inputs and class balance
      metrics.json        held-out accuracy, precision, recall, F1, ROC AUC, confusion matrix,
                          and the per-epoch history
      work/               the kept features of each input (reused by the next run)

``predict --model-path MODEL_DIR`` (or ``MODEL_DIR/model.safetensors``) reads
``model.json`` beside the weights and refuses the model when the run's feature
models or chunk length differ (:func:`virnucpro.models.classifier.check_model_card`).
Nothing here holds a time stamp, so the same training gives the same bytes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from virnucpro.models.classifier import MODEL_CARD_NAME, MODEL_DIR_WEIGHTS, MLPClassifier, load_classifier
from virnucpro.pipeline.checkpoint import atomic_write, atomic_write_text

__all__ = ["CARD_FORMAT", "METRICS_NAME", "MODEL_CARD_NAME", "MODEL_DIR_WEIGHTS", "read_model_dir", "write_model_dir"]

CARD_FORMAT = "virnucpro-classifier/1"
METRICS_NAME = "metrics.json"


def _dumps(value: Any) -> str:
    return json.dumps(value, indent=1, sort_keys=True) + "\n"


def write_model_dir(model_dir: Path, model: MLPClassifier, card: dict[str, Any], metrics: dict[str, Any]) -> Path:
    """Write the weights, ``model.json`` and ``metrics.json`` (each atomically); returns the weights path."""
    from safetensors.torch import save

    state = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
    weights = model_dir / MODEL_DIR_WEIGHTS
    atomic_write(weights, save(state, metadata={"format": CARD_FORMAT}))
    atomic_write_text(model_dir / MODEL_CARD_NAME, _dumps({"format": CARD_FORMAT, **card}))
    atomic_write_text(model_dir / METRICS_NAME, _dumps(metrics))
    return weights


def read_model_dir(path: Path) -> tuple[MLPClassifier, dict[str, Any]]:
    """The classifier and its card (empty for a file without ``model.json``, e.g. the published ones)."""
    from virnucpro.models.classifier import classifier_file, read_model_card

    weights = classifier_file(path)
    return load_classifier(weights), read_model_card(weights) or {}
