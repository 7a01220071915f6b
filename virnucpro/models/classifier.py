"""The VirNucPro MLP classifier and a loader that never runs code from the file.

The published ``300_model.pth`` / ``500_model.pth`` are the whole module pickled
by a training script run as ``__main__`` (SPEC 6), so a plain ``torch.load``
would import ``__main__.MLPClassifier`` and could run anything the pickle asks
for. We read such files in two steps:

1. A static scan of the pickle opcodes (:func:`~virnucpro.models.safe_load.check_globals`,
   which only parses) collects every global the file names. Anything outside
   :data:`ALLOWED_GLOBALS` is refused with :class:`UnsafeCheckpointError`
   before any unpickling starts, so the message names the exact global.
2. :func:`~virnucpro.models.safe_load.load_weights_only` then does the actual
   reading with torch's own restricted unpickler, with
   ``__main__.MLPClassifier`` mapped to :class:`MLPClassifier` here. This is
   defence in depth: even if the scan missed something, torch's unpickler
   refuses any global not explicitly allowed.

Nothing from the file is ever called: the allowed globals are torch's tensor
rebuild helpers, storage types, ``OrderedDict``/``set`` and four ``nn`` classes
whose instances are only filled with attributes (``__setstate__``). The
loaded tensors are then copied into a freshly constructed model.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from virnucpro.errors import ModelNotAvailableError
from virnucpro.models.safe_load import check_globals, load_weights_only, pickle_globals

__all__ = ["ALLOWED_GLOBALS", "MODEL_CARD_NAME", "MODEL_DIR_WEIGHTS", "MLPClassifier", "check_input_dim",
           "check_model_card", "classifier_file", "load_classifier", "pickle_globals", "read_model_card"]

logger = logging.getLogger(__name__)

#: Every global a classifier checkpoint may name. ``__builtin__`` is the
#: protocol-2 spelling of ``builtins``; both are accepted.
ALLOWED_GLOBALS: frozenset[str] = frozenset(
    {
        "__main__.MLPClassifier",
        "__builtin__.set",
        "builtins.set",
        "collections.OrderedDict",
        "torch._utils._rebuild_parameter",
        "torch._utils._rebuild_tensor_v2",
        "torch.FloatStorage",
        "torch.LongStorage",
        "torch.nn.modules.batchnorm.BatchNorm1d",
        "torch.nn.modules.dropout.Dropout",
        "torch.nn.modules.linear.Linear",
    }
)
_ALLOWED_TEXT = "tensors, OrderedDict and the MLPClassifier layers"

#: Files of a ``virnucpro train`` model directory (format: ``virnucpro.training.model_dir``).
MODEL_DIR_WEIGHTS = "model.safetensors"
MODEL_CARD_NAME = "model.json"

class MLPClassifier(nn.Module):
    """Linear -> BatchNorm1d -> ReLU -> Dropout -> Linear, as published.

    Attribute names match the published checkpoints' state-dict keys
    (``hidden_layer``, ``bn1``, ``output_layer``, ``dropout``).

    Args:
        input_dim: feature size (3328 = 768 DNABERT-S + 2560 ESM-2 for the published models).
        hidden_dim: hidden layer size (512 published).
        num_classes: output classes (2: 0 = others, 1 = virus).
        bn_eps: BatchNorm epsilon (torch default, as published).
    """

    def __init__(self, input_dim: int = 3328, hidden_dim: int = 512, num_classes: int = 2, bn_eps: float = 1e-5) -> None:
        super().__init__()
        self.hidden_layer = nn.Linear(input_dim, hidden_dim)
        self.bn1 = nn.BatchNorm1d(hidden_dim, eps=bn_eps)
        self.output_layer = nn.Linear(hidden_dim, num_classes)
        self.dropout = nn.Dropout(0.5)

    @property
    def input_dim(self) -> int:
        """Number of input features the classifier expects."""
        return self.hidden_layer.in_features

    @property
    def num_classes(self) -> int:
        """Number of output classes."""
        return self.output_layer.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits ``[N, num_classes]`` for features ``[N, input_dim]``."""
        x = self.hidden_layer(x)
        x = self.bn1(x)
        x = F.relu(x)
        x = self.dropout(x)
        return self.output_layer(x)

    def predict_proba(self, features: torch.Tensor) -> torch.Tensor:
        """Class probabilities in eval mode (softmax over the logits).

        Args:
            features: float tensor ``[N, input_dim]`` on any device.

        Returns:
            float32 CPU tensor ``[N, num_classes]``; column 0 = P(others), 1 = P(virus).
        """
        if features.ndim != 2 or features.shape[1] != self.input_dim:
            raise ValueError(f"expected features of shape [N, {self.input_dim}], got {list(features.shape)}")
        self.eval()
        param = next(self.parameters())
        with torch.inference_mode():
            logits = self(features.to(device=param.device, dtype=param.dtype))
            return torch.softmax(logits.float(), dim=1).cpu()


def load_classifier(path: str | Path) -> MLPClassifier:
    """Load a classifier without running any code from the file.

    Accepts the published whole-module pickle, a plain state dict (``.pth``/``.pt``,
    optionally wrapped as ``{"state_dict": ...}``) or a ``.safetensors`` file.
    Dimensions come from the tensors.

    Args:
        path: the checkpoint file.

    Returns:
        The classifier on the CPU, in eval mode.

    Raises:
        UnsafeCheckpointError: the file names a global outside :data:`ALLOWED_GLOBALS`.
        ModelNotAvailableError: the file is missing, unreadable or not an MLP classifier.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelNotAvailableError(f"classifier file not found: {path}")
    state: Mapping[str, torch.Tensor]
    if path.suffix == ".safetensors":
        state, bn_eps = _read_safetensors(path), 1e-5
    else:
        obj = _safe_torch_load(path)
        state, bn_eps = _state_from_object(obj, path)
    return _build(state, bn_eps, path)


def check_input_dim(
    classifier: MLPClassifier,
    dnabert_dim: int,
    esm_dim: int,
    *,
    dnabert_name: str = "DNABERT-S",
    esm_name: str = "ESM-2",
    classifier_name: str = "classifier",
) -> None:
    """Check that the classifier takes exactly the concatenated embeddings.

    Raises:
        ModelNotAvailableError: ``classifier.input_dim != dnabert_dim + esm_dim``.
    """
    if classifier.input_dim != dnabert_dim + esm_dim:
        raise ModelNotAvailableError(
            f"{classifier_name} expects {classifier.input_dim} input features but "
            f"{dnabert_name} ({dnabert_dim}) + {esm_name} ({esm_dim}) give {dnabert_dim + esm_dim}; "
            "use the classifier trained with these embedding models"
        )


def classifier_file(path: str | Path) -> Path:
    """The weights file of ``path``: ``path/model.safetensors`` for a model directory, else ``path``."""
    path = Path(path).expanduser()
    return path / MODEL_DIR_WEIGHTS if path.is_dir() else path


def read_model_card(weights: Path) -> dict[str, Any] | None:
    """``model.json`` beside a ``model.safetensors`` written by ``virnucpro train``; None when there is none.

    Raises:
        ModelNotAvailableError: the card exists but is not readable JSON.
    """
    card = Path(weights).with_name(MODEL_CARD_NAME)
    if Path(weights).name != MODEL_DIR_WEIGHTS or not card.is_file():
        return None
    try:
        value = json.loads(card.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelNotAvailableError(f"{card}: cannot read the model card ({exc})") from None
    if not isinstance(value, dict):
        raise ModelNotAvailableError(f"{card}: not a model card (expected a JSON object)")
    return value


def check_model_card(weights: Path, feature_models: Mapping[str, Mapping[str, Any]], chunk_length: int) -> None:
    """Refuse a trained classifier used with other feature models or another chunk length.

    Args:
        weights: the classifier file; checked only when it has a ``model.json`` beside it.
        feature_models: this run's embedder identities by kind name (``name``, ``sha256``).
        chunk_length: this run's chunk length.

    Raises:
        ModelNotAvailableError: the card names other feature models (by sha256) or another chunk length.
    """
    card = read_model_card(weights)
    if card is None:
        return
    where = Path(weights).parent
    trained = card.get("feature_models") or {}
    for kind, identity in feature_models.items():
        want = trained.get(kind) or {}
        if want.get("sha256") != identity.get("sha256"):
            raise ModelNotAvailableError(
                f"{where}: trained on {kind} model {want.get('name')!r} (sha256 {str(want.get('sha256'))[:12]}) "
                f"but this run uses {identity.get('name')!r} (sha256 {str(identity.get('sha256'))[:12]}); "
                "use the feature models it was trained on"
            )
    if card.get("chunk_length") != chunk_length:
        raise ModelNotAvailableError(
            f"{where}: trained for chunk length {card.get('chunk_length')} but this run uses {chunk_length}; "
            f"pass -c {card.get('chunk_length')}"
        )


def _safe_torch_load(path: Path) -> Any:
    check_globals(path, ALLOWED_GLOBALS, _ALLOWED_TEXT)
    allowed = [(MLPClassifier, "__main__.MLPClassifier"), nn.Linear, nn.BatchNorm1d, nn.Dropout, set]
    return load_weights_only(path, allowed, what="classifier checkpoint", allowed_text=_ALLOWED_TEXT)


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except Exception as exc:  # noqa: BLE001
        raise ModelNotAvailableError(f"{path}: cannot read safetensors file: {exc}") from exc


def _state_from_object(obj: Any, path: Path) -> tuple[Mapping[str, torch.Tensor], float]:
    """Tensors (and the BatchNorm epsilon, when known) from whatever torch.load returned."""
    if isinstance(obj, MLPClassifier):
        # Built by the unpickler without __init__ and filled from the file: read its
        # attribute dicts directly rather than call methods (state_dict runs hooks).
        state: dict[str, torch.Tensor] = {}
        for child_name, child in vars(obj).get("_modules", {}).items():
            attrs = vars(child) if isinstance(child, nn.Module) else {}
            for kind in ("_parameters", "_buffers"):
                for name, tensor in attrs.get(kind, {}).items():
                    if isinstance(tensor, torch.Tensor):
                        state[f"{child_name}.{name}"] = tensor.detach()
        eps = vars(vars(obj).get("_modules", {}).get("bn1", None) or nn.Module()).get("eps", 1e-5)
        return state, float(eps) if isinstance(eps, float) else 1e-5
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model_state_dict"):
            inner = obj.get(key)
            if isinstance(inner, Mapping):
                return inner, 1e-5
        return obj, 1e-5
    raise ModelNotAvailableError(f"{path}: not a classifier checkpoint (holds a {type(obj).__name__})")


def _build(state: Mapping[str, Any], bn_eps: float, path: Path) -> MLPClassifier:
    tensors = {k.removeprefix("module."): v for k, v in state.items() if isinstance(v, torch.Tensor)}
    weight = tensors.get("hidden_layer.weight")
    out = tensors.get("output_layer.weight")
    if weight is None or out is None or weight.ndim != 2 or out.ndim != 2:
        keys = ", ".join(sorted(tensors)[:6]) or "none"
        raise ModelNotAvailableError(
            f"{path}: not a VirNucPro MLP classifier (no hidden_layer/output_layer weights; keys: {keys})"
        )
    hidden_dim, input_dim = weight.shape
    model = MLPClassifier(input_dim=input_dim, hidden_dim=hidden_dim, num_classes=out.shape[0], bn_eps=bn_eps)
    try:
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}, strict=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())
        raise ModelNotAvailableError(f"{path}: classifier weights do not fit the published layout: {detail}") from exc
    model.eval()
    logger.debug("loaded classifier %s: %d -> %d -> %d", path, input_dim, hidden_dim, out.shape[0])
    return model
