"""Demo model set: real formats, byte-identical builds, atomic idempotent caching."""

from __future__ import annotations

import argparse
import hashlib
import json
import threading
from pathlib import Path

import pytest
import torch

from virnucpro.models import demo
from virnucpro.models.classifier import check_input_dim, load_classifier
from virnucpro.models.demo import DemoModelSet, build_demo_models, ensure_demo_models

DNABERT_KEYS_PER_LAYER = [
    "attention.self.Wqkv.weight",
    "attention.self.Wqkv.bias",
    "attention.output.dense.weight",
    "attention.output.dense.bias",
    "attention.output.LayerNorm.weight",
    "attention.output.LayerNorm.bias",
    "mlp.gated_layers.weight",
    "mlp.wo.weight",
    "mlp.wo.bias",
    "mlp.layernorm.weight",
    "mlp.layernorm.bias",
]


@pytest.fixture(scope="module")
def demo_set(tmp_path_factory) -> DemoModelSet:
    return ensure_demo_models(tmp_path_factory.mktemp("cache"))


def _hashes(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_two_builds_are_byte_identical(demo_set, tmp_path):
    other = build_demo_models(tmp_path)
    assert _hashes(other.root) == _hashes(demo_set.root)
    manifest = json.loads((demo_set.root / demo.MANIFEST).read_text())
    assert manifest["notice"] == DemoModelSet.NOTICE == "demo models: scores are meaningless"
    assert manifest["sha256"] == {k: v for k, v in _hashes(demo_set.root).items() if k != demo.MANIFEST}


def test_layout_under_cache(demo_set):
    assert demo_set.root.name == demo.DEMO_VERSION and demo_set.root.parent.name == "demo"
    assert demo_set.esm_path.name.startswith("esm2_") and demo_set.esm_path.is_file()
    assert (demo_set.root / demo.ESM_REGRESSION_FILE).is_file()
    assert not [p for p in demo_set.root.parent.iterdir() if p.name.startswith((".build", ".stale"))]


def test_ensure_is_idempotent_and_repairs(demo_set):
    before = {p: p.stat().st_mtime_ns for p in demo_set.root.rglob("*") if p.is_file()}
    again = ensure_demo_models(demo_set.root.parent.parent)
    assert again == demo_set
    assert {p: p.stat().st_mtime_ns for p in demo_set.root.rglob("*") if p.is_file()} == before
    good = _hashes(demo_set.root)
    demo_set.classifier_path.unlink()
    repaired = ensure_demo_models(demo_set.root.parent.parent)
    assert _hashes(repaired.root) == good


def test_concurrent_callers(tmp_path):
    results: list[DemoModelSet] = []
    errors: list[BaseException] = []

    def build():
        try:
            results.append(ensure_demo_models(tmp_path))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=build) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 2 and results[0] == results[1]
    assert sorted(p.name for p in (tmp_path / "demo").iterdir()) == [demo.DEMO_VERSION, f"{demo.DEMO_VERSION}.lock"]


def test_dnabert_dir_has_real_formats(demo_set):
    from safetensors.torch import load_file
    from tokenizers import Tokenizer

    directory = demo_set.dnabert_dir
    config = json.loads((directory / "config.json").read_text())
    assert config["hidden_size"] == demo_set.dnabert_dim == 48
    assert (config["num_attention_heads"], config["num_hidden_layers"], config["intermediate_size"]) == (12, 2, 96)
    assert config["layer_norm_eps"] == 1e-12
    tokenizer_json = json.loads((directory / "tokenizer.json").read_text())
    assert tokenizer_json["model"]["type"] == "BPE"
    tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
    assert tokenizer.get_vocab_size() == config["vocab_size"]
    assert [tokenizer.token_to_id(t) for t in ("[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]")] == [0, 1, 2, 3, 4]
    encoding = tokenizer.encode("ACGTTGCANACGT")
    assert encoding.tokens[0] == "[CLS]" and encoding.tokens[-1] == "[SEP]"
    assert "[UNK]" in encoding.tokens  # N is not in the vocabulary
    assert "".join(t for t in encoding.tokens[1:-1] if t != "[UNK]") == "ACGTTGCAACGT"
    assert len(encoding.tokens) < 13  # merges happen
    state = load_file(str(directory / "model.safetensors"))
    expected = {
        "embeddings.word_embeddings.weight",
        "embeddings.token_type_embeddings.weight",
        "embeddings.LayerNorm.weight",
        "embeddings.LayerNorm.bias",
        "pooler.dense.weight",
        "pooler.dense.bias",
    } | {f"encoder.layer.{n}.{k}" for n in range(2) for k in DNABERT_KEYS_PER_LAYER}
    assert set(state) == expected
    assert state["encoder.layer.1.attention.self.Wqkv.weight"].shape == (144, 48)
    assert state["encoder.layer.0.mlp.gated_layers.weight"].shape == (192, 48)
    assert all(t.dtype == torch.float32 and torch.isfinite(t).all() for t in state.values())


def test_esm_checkpoint_loads_into_fair_esm_and_runs(demo_set):
    import esm
    from esm.model.esm2 import ESM2

    with torch.serialization.safe_globals([argparse.Namespace]):
        checkpoint = torch.load(demo_set.esm_path, weights_only=True)
        regression = torch.load(demo_set.root / demo.ESM_REGRESSION_FILE, weights_only=True)
    cfg = checkpoint["cfg"]["model"]
    assert (cfg.encoder_layers, cfg.encoder_embed_dim, cfg.encoder_attention_heads, cfg.token_dropout) == (6, 32, 4, True)
    state = {k.removeprefix("encoder."): v for k, v in checkpoint["model"].items()}
    state.update(regression["model"])
    model = ESM2(num_layers=6, embed_dim=32, attention_heads=4, alphabet="ESM-1b", token_dropout=True)
    model.load_state_dict(state, strict=True)
    model.eval()
    alphabet = esm.data.Alphabet.from_architecture("ESM-1b")
    _, _, tokens = alphabet.get_batch_converter()([("p", "MKTAYIAKQR")])
    with torch.no_grad():
        rep = model(tokens, repr_layers=[6])["representations"][6]
    assert rep.shape == (1, 12, demo_set.esm_dim) and torch.isfinite(rep).all()


def test_classifier_matches_embedding_dims(demo_set):
    classifier = load_classifier(demo_set.classifier_path)
    check_input_dim(classifier, demo_set.dnabert_dim, demo_set.esm_dim)
    probs = classifier.predict_proba(torch.ones(2, demo_set.dnabert_dim + demo_set.esm_dim))
    assert probs.shape == (2, 2) and torch.isfinite(probs).all()


def test_listed_by_registry(demo_set, monkeypatch, tmp_path):
    from virnucpro.models.inventory import list_cached

    monkeypatch.setenv("VIRNUCPRO_CACHE", str(demo_set.root.parent.parent))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    listed = [m for m in list_cached() if m.kind == "demo"]
    assert len(listed) == 1 and listed[0].complete and listed[0].name == demo.DEMO_VERSION and listed[0].size_bytes > 0
