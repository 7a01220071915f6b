"""The MLP classifier and its safe loader: published fidelity, other formats, refusal of unsafe pickles."""

from __future__ import annotations

import builtins
import os
import pickle
import sys
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from virnucpro.errors import EXIT_MODEL_UNAVAILABLE, ModelNotAvailableError, UnsafeCheckpointError
from virnucpro.models.classifier import MLPClassifier, check_input_dim, load_classifier, pickle_globals

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "tiny_reference"
CLASSIFIER = FIXTURE / "models" / "classifier_tiny.pth"
EXPECTED = FIXTURE / "expected"


def _expected_features() -> tuple[list[str], torch.Tensor]:
    dnabert = torch.load(EXPECTED / "dnabert_embeddings.pt", weights_only=True)
    esm = torch.load(EXPECTED / "esm_embeddings.pt", weights_only=True)
    esm_by_id = dict(zip(esm["ids"], esm["embeddings"]))
    ids = list(dnabert["ids"])
    assert set(ids) == set(esm_by_id)
    features = torch.stack([torch.cat([d, esm_by_id[i]]) for i, d in zip(ids, dnabert["embeddings"])])
    return ids, features


def _expected_scores() -> dict[str, tuple[str, float, float]]:
    lines = (EXPECTED / "prediction_results.txt").read_text().splitlines()
    assert lines[0] == "Sequence_ID\tPrediction\tscore1\tscore2"
    rows = {}
    for line in lines[1:]:
        seq_id, label, s1, s2 = line.split("\t")
        rows[seq_id] = (label, float(s1), float(s2))
    return rows


def test_fixture_loads_with_published_dims():
    model = load_classifier(CLASSIFIER)
    assert isinstance(model, MLPClassifier)
    assert model.input_dim == 80
    assert model.hidden_layer.out_features == 64
    assert model.num_classes == 2
    assert not model.training


def test_fixture_reproduces_published_scores_joined_by_id():
    ids, features = _expected_features()
    expected = _expected_scores()
    probs = load_classifier(CLASSIFIER).predict_proba(features)
    assert probs.dtype == torch.float32 and probs.shape == (len(ids), 2)
    assert set(ids) == set(expected)
    for seq_id, (p_other, p_virus) in zip(ids, probs.tolist()):
        label, s1, s2 = expected[seq_id]
        assert abs(p_other - s1) < 1e-5 and abs(p_virus - s2) < 1e-5, seq_id
        assert label == ("virus" if p_virus > p_other else "others")


class _PublishedStub(nn.Module):
    """What the published training script defined as ``__main__.MLPClassifier`` (for the comparison only)."""

    def forward(self, x):
        x = F.relu(self.bn1(self.hidden_layer(x)))
        return self.output_layer(self.dropout(x))


def test_same_probabilities_as_unrestricted_torch_load(monkeypatch):
    monkeypatch.setattr(sys.modules["__main__"], "MLPClassifier", _PublishedStub, raising=False)
    reference = torch.load(CLASSIFIER, weights_only=False)  # trusted fixture, test only
    reference.eval()
    features = torch.randn(7, 80, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = torch.softmax(reference(features), dim=1)
    got = load_classifier(CLASSIFIER).predict_proba(features)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


def test_state_dict_and_safetensors_give_same_probabilities(tmp_path):
    from safetensors.torch import save_file

    model = load_classifier(CLASSIFIER)
    features = torch.randn(5, 80, generator=torch.Generator().manual_seed(1))
    want = model.predict_proba(features)
    torch.save(model.state_dict(), tmp_path / "plain.pth")
    torch.save({"state_dict": model.state_dict()}, tmp_path / "wrapped.pt")
    torch.save(OrderedDict((f"module.{k}", v) for k, v in model.state_dict().items()), tmp_path / "dp.pt")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "w.safetensors"))
    for name in ("plain.pth", "wrapped.pt", "dp.pt", "w.safetensors"):
        torch.testing.assert_close(load_classifier(tmp_path / name).predict_proba(features), want, rtol=0, atol=0)


def test_dims_come_from_the_tensors(tmp_path):
    model = MLPClassifier(input_dim=3328, hidden_dim=512, num_classes=2)
    torch.save(model.state_dict(), tmp_path / "big.pth")
    loaded = load_classifier(tmp_path / "big.pth")
    assert (loaded.input_dim, loaded.hidden_layer.out_features, loaded.num_classes) == (3328, 512, 2)


class _RunsShell:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _CallsEval:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (builtins.eval, (f"open({str(self.marker)!r}, 'w').close()",))


@pytest.mark.parametrize(
    ("payload", "protocol", "global_name"),
    [
        (_RunsShell, 2, os.system.__module__ + ".system"),
        (_CallsEval, 2, "__builtin__.eval"),  # protocol 2 spells builtins the Python 2 way
        (_CallsEval, 4, "builtins.eval"),  # STACK_GLOBAL instead of GLOBAL
    ],
)
def test_malicious_checkpoint_is_refused_and_nothing_runs(tmp_path, payload, protocol, global_name):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    weights = MLPClassifier(80, 64, 2).state_dict()
    torch.save({"state_dict": weights, "x": payload(marker)}, path, pickle_protocol=protocol)
    assert global_name in pickle_globals(path)
    with pytest.raises(UnsafeCheckpointError) as info:
        load_classifier(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message and global_name in message
    assert info.value.exit_code == EXIT_MODEL_UNAVAILABLE
    assert not marker.exists()


def test_plain_pickle_file_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(_CallsEval(marker), protocol=2))
    with pytest.raises(UnsafeCheckpointError, match=r"__builtin__\.eval"):
        load_classifier(path)
    assert not marker.exists()


def test_globals_torch_would_allow_are_still_refused(tmp_path):
    path = tmp_path / "extra.pth"
    torch.save({"state_dict": MLPClassifier(8, 4, 2).state_dict(), "shape": torch.Size([2, 3])}, path)
    with pytest.raises(UnsafeCheckpointError, match=r"torch\.Size"):
        load_classifier(path)


def test_not_a_classifier_and_missing_file(tmp_path):
    torch.save({"fc1.weight": torch.zeros(4, 8)}, tmp_path / "other.pth")
    with pytest.raises(ModelNotAvailableError, match="not a VirNucPro MLP classifier"):
        load_classifier(tmp_path / "other.pth")
    with pytest.raises(ModelNotAvailableError, match="not found"):
        load_classifier(tmp_path / "absent.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint at all")
    with pytest.raises(ModelNotAvailableError):
        load_classifier(tmp_path / "junk.pth")


def test_extra_keys_do_not_fit(tmp_path):
    state = MLPClassifier(8, 4, 2).state_dict()
    state["hidden2.weight"] = torch.zeros(4, 4)
    torch.save(state, tmp_path / "extra.pth")
    with pytest.raises(ModelNotAvailableError, match="do not fit"):
        load_classifier(tmp_path / "extra.pth")


def test_check_input_dim():
    model = MLPClassifier(3328, 512, 2)
    check_input_dim(model, 768, 2560)
    with pytest.raises(ModelNotAvailableError) as info:
        check_input_dim(model, 768, 1280, esm_name="ESM-2 esm2_t33_650M_UR50D")
    message = str(info.value)
    for text in ("3328", "768", "1280", "2048", "DNABERT-S", "esm2_t33_650M_UR50D"):
        assert text in message


def test_predict_proba_checks_shape_and_returns_cpu_float32():
    model = MLPClassifier(6, 4, 2)
    model.train()
    out = model.predict_proba(torch.randn(3, 6, dtype=torch.float64))
    assert out.dtype == torch.float32 and out.device.type == "cpu" and not model.training
    torch.testing.assert_close(out.sum(dim=1), torch.ones(3))
    with pytest.raises(ValueError):
        model.predict_proba(torch.randn(3, 5))


def test_torch_restricted_unpickler_is_a_second_line_of_defence(tmp_path, monkeypatch):
    from virnucpro.models import classifier

    monkeypatch.setattr(classifier, "check_globals", lambda *args: None)  # pretend the scan missed it
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"x": _CallsEval(marker)}, path)
    with pytest.raises(UnsafeCheckpointError, match="eval"):
        load_classifier(path)
    assert not marker.exists()


def test_legacy_torch_format(tmp_path):
    model = load_classifier(CLASSIFIER)
    torch.save(model.state_dict(), tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)
    features = torch.randn(4, 80, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(load_classifier(tmp_path / "legacy.pth").predict_proba(features), model.predict_proba(features))
