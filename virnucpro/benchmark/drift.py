"""How far a lower precision moves embeddings and labels away from FP32.

* Embeddings: per-frame cosine similarity between the FP32 and the low-precision
  vector (computed in float64), summarised by its minimum and median.
* Labels: both feature sets (DNABERT-S + ESM-2, joined per frame) are scored by
  the same classifier exactly as ``predict`` scores them (float64 classifier,
  :func:`virnucpro.pipeline.report.results.probabilities_from_logits`, arg-max); we count
  frames whose label differs (flips), in each direction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from virnucpro.pipeline.report.results import LABELS, probabilities_from_logits


def cosine_rows(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> np.ndarray:
    """Cosine similarity of each row of ``a`` with the same row of ``b`` (float64).

    Two all-zero rows count as identical (1.0); one all-zero row against a
    non-zero one as 0.0.
    """
    a64 = np.asarray(a, dtype=np.float64)
    b64 = np.asarray(b, dtype=np.float64)
    if a64.shape != b64.shape or a64.ndim != 2:
        raise ValueError(f"need two [N, dim] arrays of one shape, got {a64.shape} and {b64.shape}")
    dot = np.einsum("ij,ij->i", a64, b64)
    norms = np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1)
    both_zero = (np.linalg.norm(a64, axis=1) == 0) & (np.linalg.norm(b64, axis=1) == 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.where(norms > 0, dot / np.where(norms > 0, norms, 1.0), 0.0)
    cos[both_zero] = 1.0
    return np.clip(cos, -1.0, 1.0)


def cosine_summary(
    reference: np.ndarray | torch.Tensor, other: np.ndarray | torch.Tensor
) -> dict[str, float]:
    """``{"cosine_min", "cosine_median", "frames"}`` of :func:`cosine_rows`."""
    cos = cosine_rows(reference, other)
    if cos.size == 0:
        return {"cosine_min": float("nan"), "cosine_median": float("nan"), "frames": 0}
    return {"cosine_min": float(cos.min()), "cosine_median": float(np.median(cos)), "frames": int(cos.size)}


def scores(classifier: torch.nn.Module, features: np.ndarray) -> np.ndarray:
    """Float32 ``[N, 2]`` probabilities as ``predict`` computes them (float64 logits, exact-tie rule)."""
    model = copy_to_double(classifier)
    with torch.inference_mode():
        logits = model(torch.from_numpy(np.asarray(features, dtype=np.float64))).numpy()
    return probabilities_from_logits(logits)


def classify(classifier: torch.nn.Module, features: np.ndarray) -> np.ndarray:
    """Labels (0 others, 1 virus): the arg-max of :func:`scores`, ties to ``others``."""
    return np.argmax(scores(classifier, features), axis=1)


def copy_to_double(classifier: torch.nn.Module) -> torch.nn.Module:
    """A float64, eval-mode copy of the classifier (the caller's module is left as it is)."""
    import copy

    return copy.deepcopy(classifier).double().eval()


@dataclass(frozen=True)
class LabelAgreement:
    """Agreement of per-frame labels between a reference and another feature set."""

    frames: int
    agree: int
    virus_to_others: int
    others_to_virus: int
    reference_virus: int

    @property
    def agreement(self) -> float:
        return self.agree / self.frames if self.frames else float("nan")

    @property
    def flips(self) -> int:
        return self.frames - self.agree

    def as_dict(self) -> dict[str, float | int]:
        return {
            "frames": self.frames, "agreement": self.agreement, "flips": self.flips,
            "virus_to_others": self.virus_to_others, "others_to_virus": self.others_to_virus,
            "reference_virus_fraction": self.reference_virus / self.frames if self.frames else float("nan"),
        }


def label_agreement(reference_labels: np.ndarray, other_labels: np.ndarray) -> LabelAgreement:
    """Compare two label vectors (1 = ``virus``)."""
    ref = np.asarray(reference_labels)
    oth = np.asarray(other_labels)
    if ref.shape != oth.shape:
        raise ValueError(f"label vectors differ in shape: {ref.shape} vs {oth.shape}")
    virus = LABELS.index("virus")
    return LabelAgreement(
        frames=int(ref.size),
        agree=int((ref == oth).sum()),
        virus_to_others=int(((ref == virus) & (oth != virus)).sum()),
        others_to_virus=int(((ref != virus) & (oth == virus)).sum()),
        reference_virus=int((ref == virus).sum()),
    )


def random_classifier(input_dim: int, reference_features: np.ndarray, seed: int = 0, hidden_dim: int = 512):
    """A random :class:`~virnucpro.models.classifier.MLPClassifier` whose boundary runs through the data.

    With random weights and default BatchNorm statistics nearly every frame would
    get the same label, and agreement would be 100% whatever the drift. So the
    BatchNorm running statistics are set to the mean and variance of the hidden
    layer on ``reference_features`` (the FP32 features), and the output bias puts
    the decision boundary near the median logit difference, in the widest gap
    between frames there (:func:`central_gap_threshold`): 30-70% of the frames are
    called ``virus``, and only a real change of the features flips a label.

    Args:
        input_dim: feature size (768 + 2560 = 3328 at full size).
        reference_features: FP32 features ``[N, input_dim]`` used to calibrate.
        seed: weight seed.
        hidden_dim: hidden size (512 as published).
    """
    from virnucpro.models.classifier import MLPClassifier

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = MLPClassifier(input_dim=input_dim, hidden_dim=hidden_dim, num_classes=2).double().eval()
    x = torch.from_numpy(np.asarray(reference_features, dtype=np.float64))
    with torch.no_grad():
        hidden = model.hidden_layer(x)
        assert model.bn1.running_mean is not None and model.bn1.running_var is not None
        model.bn1.running_mean.copy_(hidden.mean(0))
        model.bn1.running_var.copy_(hidden.var(0, unbiased=False) + 1e-6)
        logits = model(x)
        threshold = central_gap_threshold((logits[:, 1] - logits[:, 0]).numpy())
        model.output_layer.bias[1] -= threshold / 2
        model.output_layer.bias[0] += threshold / 2
    return model.float().eval()


def central_gap_threshold(values: np.ndarray, central: float = 0.4) -> float:
    """A cut that splits ``values`` near their median without sitting on any of them.

    Returns the midpoint of the widest gap between consecutive sorted values within
    the central ``central`` fraction (30th-70th percentile by default). Cutting at
    the median itself would put a frame exactly on the decision boundary (odd
    counts) and make it flip under any perturbation, which is no measure of drift.
    """
    v = np.sort(np.asarray(values, dtype=np.float64))
    if v.size < 2:
        return float(v[0] - 1.0) if v.size else 0.0
    lo = int(np.floor((0.5 - central / 2) * (v.size - 1)))
    hi = max(lo + 1, int(np.ceil((0.5 + central / 2) * (v.size - 1))))
    gaps = np.diff(v[lo : hi + 1])
    i = lo + int(np.argmax(gaps))
    return float((v[i] + v[i + 1]) / 2)
