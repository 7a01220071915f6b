"""The VirNucPro MLP classifier and a loader that never runs code from the file.

The published ``300_model.pth`` / ``500_model.pth`` are the whole module pickled
by a training script run as ``__main__`` (SPEC 6), so a plain ``torch.load``
would import ``__main__.MLPClassifier`` and could run anything the pickle asks
for. We read such files in two steps:

1. A static scan of the pickle opcodes (``pickletools.genops``, which only
   parses) collects every global the file names. Anything outside
   :data:`ALLOWED_GLOBALS` is refused with :class:`UnsafeCheckpointError`
   before any unpickling starts, so the message names the exact global.
2. ``torch.load(weights_only=True)`` under ``torch.serialization.safe_globals``
   then does the actual reading with torch's own restricted unpickler, with
   ``__main__.MLPClassifier`` mapped to :class:`MLPClassifier` here. This is
   defence in depth: even if the scan missed something, torch's unpickler
   refuses any global not explicitly allowed.

Nothing from the file is ever called: the allowed globals are torch's tensor
rebuild helpers, storage types, ``OrderedDict``/``set`` and four ``nn`` classes
whose instances are only filled with attributes (``__setstate__``). The
loaded tensors are then copied into a freshly constructed model.
"""

from __future__ import annotations

import logging
import pickletools
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import torch
from torch import nn
from torch.nn import functional as F

from virnucpro.errors import ModelNotAvailableError, UnsafeCheckpointError

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

# Opcodes that push a string that STACK_GLOBAL (protocol 4+) may consume.
_STRING_OPS = frozenset({"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "STRING", "BINSTRING", "SHORT_BINSTRING"})
_MEMO_PUT_OPS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
_MEMO_GET_OPS = frozenset({"GET", "BINGET", "LONG_BINGET"})


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


def pickle_globals(path: str | Path) -> list[str]:
    """List the globals (``module.name``) a torch checkpoint's pickle names, without unpickling.

    Handles torch's zip format (``*/data.pkl``) and the legacy format (the
    pickles at the start of the file). A ``STACK_GLOBAL`` whose operands cannot
    be traced statically is reported as ``<unresolved STACK_GLOBAL>``, which no
    allow-list contains.
    """
    path = Path(path)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n == "data.pkl" or n.endswith("/data.pkl")]
            if not names:
                raise ModelNotAvailableError(f"{path}: not a torch checkpoint (zip without data.pkl)")
            with archive.open(names[0]) as stream:
                return _scan_pickle(stream)
    found: list[str] = []
    with path.open("rb") as stream:
        # Legacy torch.save: magic number, protocol, sys info, then the object.
        for _ in range(4):
            if not stream.read(1):
                break
            stream.seek(-1, 1)
            found.extend(_scan_pickle(stream))
    return found


def _scan_pickle(stream: IO[bytes]) -> list[str]:
    found: list[str] = []
    strings: list[Any] = []  # values pushed recently, for STACK_GLOBAL
    memo: dict[Any, Any] = {}
    next_memo = 0
    try:
        for opcode, arg, _pos in pickletools.genops(stream):
            name = opcode.name
            if name in ("GLOBAL", "INST"):
                module, _, attr = str(arg).partition(" ")
                found.append(f"{module}.{attr}")
            elif name == "STACK_GLOBAL":
                if len(strings) >= 2 and isinstance(strings[-1], str) and isinstance(strings[-2], str):
                    found.append(f"{strings[-2]}.{strings[-1]}")
                else:
                    found.append("<unresolved STACK_GLOBAL>")
                strings.clear()
            elif name in _STRING_OPS:
                strings.append(arg)
            elif name in _MEMO_PUT_OPS:
                memo[arg] = strings[-1] if strings else None
                next_memo = max(next_memo, int(arg) + 1)
            elif name == "MEMOIZE":
                memo[next_memo] = strings[-1] if strings else None
                next_memo += 1
            elif name in _MEMO_GET_OPS:
                strings.append(memo.get(arg))
            else:
                strings.append(None)
            del strings[:-2]
    except Exception as exc:  # noqa: BLE001 - a malformed pickle is refused, not crashed on
        raise ModelNotAvailableError(f"unreadable pickle: {exc}") from exc
    return found


def _check_globals(path: Path) -> None:
    for name in pickle_globals(path):
        canonical = name.replace("__builtin__.", "builtins.")
        if name not in ALLOWED_GLOBALS and canonical not in ALLOWED_GLOBALS:
            raise UnsafeCheckpointError(
                f"{path}: refused to load, the checkpoint asks for '{name}', which is not an allowed "
                "type (only tensors, OrderedDict and the MLPClassifier layers are)"
            )


def _safe_torch_load(path: Path) -> Any:
    _check_globals(path)
    allowed = [
        (MLPClassifier, "__main__.MLPClassifier"),
        nn.Linear,
        nn.BatchNorm1d,
        nn.Dropout,
        set,
    ]
    try:
        with torch.serialization.safe_globals(allowed):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - every failure becomes one line for the user
        text = str(exc)
        refused = re.search(r"Unsupported global: GLOBAL (\S+)", text)
        if refused:
            raise UnsafeCheckpointError(
                f"{path}: refused to load, the checkpoint asks for '{refused.group(1)}', which is not an allowed type"
            ) from exc
        first = next((line.strip() for line in text.splitlines() if line.strip()), type(exc).__name__)
        raise ModelNotAvailableError(f"{path}: cannot read classifier checkpoint: {first}") from exc


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
