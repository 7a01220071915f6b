"""A tiny random model set, built locally and deterministically, so the pipeline runs with no network.

The set has the real file formats: a DNABERT-S directory (``config.json``,
a byte-pair-encoding ``tokenizer.json``, ``tokenizer_config.json``,
``model.safetensors`` with the real key names), a fair-esm ESM-2 checkpoint
(``esm2_t6_demo.pt`` and its contact-regression companion) and a classifier
state dict whose input is DNABERT-S hidden + ESM-2 dim. Scores made with it are
meaningless (:attr:`DemoModelSet.NOTICE`).

Byte-identical across runs and machines: every number comes from a
counter-based generator (SplitMix64 over the tensor's name, in exact uint64
arithmetic), not from torch's or numpy's RNG streams, and the tokenizer's
merges come from a small deterministic BPE trainer over a generated corpus.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from virnucpro.errors import ModelNotAvailableError
from virnucpro.hashing import file_sha256
from virnucpro.models.locations import cache_dir as default_cache_dir
from virnucpro.models.locations import unwritable_reason

logger = logging.getLogger(__name__)

DEMO_VERSION = "v1"
MANIFEST = "MANIFEST.json"

DNABERT_HIDDEN = 48
DNABERT_HEADS = 12
DNABERT_LAYERS = 2
DNABERT_FFN = 96
DNABERT_VOCAB = 256
ESM_LAYERS = 6
ESM_DIM = 32
ESM_HEADS = 4
CLASSIFIER_HIDDEN = 64

ESM_FILE = f"esm2_t{ESM_LAYERS}_demo.pt"
ESM_REGRESSION_FILE = f"esm2_t{ESM_LAYERS}_demo-contact-regression.pt"
DNABERT_DIR = "dnabert_s_demo"
CLASSIFIER_FILE = "classifier_demo.pth"

_BASES = ("A", "C", "G", "T")
_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


@dataclass(frozen=True)
class DemoModelSet:
    """Paths of a built demo model set.

    Attributes:
        root: the set's directory (``$VIRNUCPRO_CACHE/demo/<version>``).
        esm_path: fair-esm format ESM-2 checkpoint.
        dnabert_dir: DNABERT-S format directory.
        classifier_path: classifier state dict (input = ``dnabert_dim + esm_dim``).
        dnabert_dim: DNABERT-S hidden size.
        esm_dim: ESM-2 embedding size.
    """

    root: Path
    esm_path: Path
    dnabert_dir: Path
    classifier_path: Path
    dnabert_dim: int = DNABERT_HIDDEN
    esm_dim: int = ESM_DIM

    NOTICE: ClassVar[str] = "demo models: scores are meaningless"


def ensure_demo_models(cache_dir: Path | None = None) -> DemoModelSet:
    """Build the demo model set once, or return the one already built.

    Safe with concurrent callers: the set is built in a temporary directory
    under a file lock and renamed into place, so readers only ever see a
    complete set.

    Args:
        cache_dir: cache root; :func:`virnucpro.models.locations.cache_dir` when None.

    Returns:
        The demo model set in ``<cache_dir>/demo/<DEMO_VERSION>/``.
    """
    from filelock import FileLock

    if cache_dir is None:
        cache_dir = default_cache_dir()
    base = Path(cache_dir) / "demo"
    final = base / DEMO_VERSION
    if _is_complete(final):
        return _model_set(final)  # reading needs no lock, so a read-only cache still serves a built set
    if reason := unwritable_reason(base):
        raise ModelNotAvailableError(
            f"the demo model set is not built and the cache {base} cannot be written ({reason}): "
            "set VIRNUCPRO_CACHE to a writable directory"
        )
    with FileLock(str(base / f"{DEMO_VERSION}.lock")):
        if not _is_complete(final):
            if final.exists():
                logger.warning("demo model set in %s is incomplete; rebuilding it", final)
                stale = Path(tempfile.mkdtemp(prefix=f".stale-{DEMO_VERSION}-", dir=base))
                os.replace(final, stale / "old")
                shutil.rmtree(stale, ignore_errors=True)
            work = Path(tempfile.mkdtemp(prefix=f".build-{DEMO_VERSION}-", dir=base))
            try:
                build_demo_models(work)
                os.replace(work, final)
            finally:
                shutil.rmtree(work, ignore_errors=True)
            logger.info("built demo model set in %s (%s)", final, DemoModelSet.NOTICE)
    return _model_set(final)


def cached_demo_sets(cache_root: Path) -> list[tuple[str, Path, bool]]:
    """Demo sets under ``<cache_root>/demo``: ``(version, directory, complete)``."""
    base = Path(cache_root) / "demo"
    if not base.is_dir():
        return []
    return [(d.name, d, _is_complete(d)) for d in sorted(base.iterdir()) if d.is_dir() and not d.name.startswith(".")]


def build_demo_models(target: Path) -> DemoModelSet:
    """Write the demo files into ``target`` (an existing, empty directory) and a manifest last."""
    target = Path(target)
    (target / DNABERT_DIR).mkdir(parents=True, exist_ok=True)
    _write_dnabert(target / DNABERT_DIR)
    _write_esm(target / ESM_FILE, target / ESM_REGRESSION_FILE)
    _write_classifier(target / CLASSIFIER_FILE)
    files = sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file())
    manifest = {
        "version": DEMO_VERSION,
        "notice": DemoModelSet.NOTICE,
        "sha256": {name: file_sha256(target / name, use_cache=False) for name in files},
    }
    (target / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return _model_set(target)


def _model_set(root: Path) -> DemoModelSet:
    return DemoModelSet(
        root=root,
        esm_path=root / ESM_FILE,
        dnabert_dir=root / DNABERT_DIR,
        classifier_path=root / CLASSIFIER_FILE,
    )


def _is_complete(root: Path) -> bool:
    try:
        manifest = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
        return all((root / name).is_file() for name in manifest["sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        return False


# ---------------------------------------------------------------------------
# deterministic numbers


def _uniform(name: str, shape: tuple[int, ...], scale: float, offset: float = 0.0) -> np.ndarray:
    """float32 values in ``offset ± scale``, a pure function of ``name`` and ``shape``."""
    n = int(np.prod(shape)) if shape else 1
    seed = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")
    with np.errstate(over="ignore"):
        z = (np.uint64(seed) + np.arange(1, n + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)) & _MASK64
        z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _MASK64
        z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _MASK64
        z = z ^ (z >> np.uint64(31))
    unit = (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)  # [0, 1), exact
    return (offset + scale * (2.0 * unit - 1.0)).astype(np.float32).reshape(shape)


def _param(name: str, shape: tuple[int, ...]) -> np.ndarray:
    """Values for a parameter, scaled by its role (LayerNorm weights near 1, small biases)."""
    leaf = name.rsplit(".", 1)[-1]
    is_norm = "norm" in name.lower() or "LayerNorm" in name
    if is_norm and leaf == "weight":
        return _uniform(name, shape, 0.1, 1.0)
    if leaf == "bias":
        return _uniform(name, shape, 0.02)
    fan_in = shape[-1] if len(shape) > 1 else shape[0]
    return _uniform(name, shape, (3.0 / fan_in) ** 0.5)


# ---------------------------------------------------------------------------
# DNABERT-S


def _dna_corpus(n_words: int = 32, length: int = 120) -> list[str]:
    codes = _uniform("demo-dna-corpus", (n_words, length), 0.5, 0.5)  # [0, 1)
    idx = np.minimum((codes * 4).astype(np.int64), 3)
    return ["".join(_BASES[i] for i in row) for row in idx]


def build_dna_tokenizer(vocab_size: int = DNABERT_VOCAB):
    """The demo's BPE tokenizer: :func:`train_dna_bpe` (exact trainer) over the generated corpus."""
    from virnucpro.models.dnabert_tokenizer import train_dna_bpe

    return train_dna_bpe(_dna_corpus(), vocab_size, exact=True)


def _write_dnabert(directory: Path) -> None:
    import torch
    from safetensors.torch import save_file

    tokenizer = build_dna_tokenizer()
    (directory / "tokenizer.json").write_text(tokenizer.to_str(pretty=True), encoding="utf-8")
    tokenizer_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "unk_token": "[UNK]",
        "cls_token": "[CLS]",
        "sep_token": "[SEP]",
        "pad_token": "[PAD]",
        "mask_token": "[MASK]",
        "model_max_length": 512,
        "padding_side": "right",
    }
    _write_json(directory / "tokenizer_config.json", tokenizer_config)
    vocab_size = tokenizer.get_vocab_size()
    config = {
        "_name_or_path": "virnucpro-demo-dnabert-s",
        "alibi_starting_size": 512,
        "architectures": ["BertModel"],
        "attention_probs_dropout_prob": 0.0,
        "classifier_dropout": None,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": DNABERT_HIDDEN,
        "initializer_range": 0.02,
        "intermediate_size": DNABERT_FFN,
        "layer_norm_eps": 1e-12,
        "max_position_embeddings": 512,
        "model_type": "bert",
        "num_attention_heads": DNABERT_HEADS,
        "num_hidden_layers": DNABERT_LAYERS,
        "pad_token_id": tokenizer.token_to_id("[PAD]"),
        "position_embedding_type": "absolute",
        "torch_dtype": "float32",
        "type_vocab_size": 2,
        "vocab_size": vocab_size,
    }
    _write_json(directory / "config.json", config)
    d, f = DNABERT_HIDDEN, DNABERT_FFN
    shapes: dict[str, tuple[int, ...]] = {
        "embeddings.word_embeddings.weight": (vocab_size, d),
        "embeddings.token_type_embeddings.weight": (2, d),
        "embeddings.LayerNorm.weight": (d,),
        "embeddings.LayerNorm.bias": (d,),
    }
    for n in range(DNABERT_LAYERS):
        p = f"encoder.layer.{n}."
        shapes.update(
            {
                p + "attention.self.Wqkv.weight": (3 * d, d),
                p + "attention.self.Wqkv.bias": (3 * d,),
                p + "attention.output.dense.weight": (d, d),
                p + "attention.output.dense.bias": (d,),
                p + "attention.output.LayerNorm.weight": (d,),
                p + "attention.output.LayerNorm.bias": (d,),
                p + "mlp.gated_layers.weight": (2 * f, d),
                p + "mlp.wo.weight": (d, f),
                p + "mlp.wo.bias": (d,),
                p + "mlp.layernorm.weight": (d,),
                p + "mlp.layernorm.bias": (d,),
            }
        )
    shapes["pooler.dense.weight"] = (d, d)
    shapes["pooler.dense.bias"] = (d,)
    tensors = {name: torch.from_numpy(_param("dnabert." + name, shape)) for name, shape in shapes.items()}
    save_file(tensors, str(directory / "model.safetensors"), metadata={"format": "pt"})


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")


# ---------------------------------------------------------------------------
# ESM-2 and classifier


def _write_esm(model_path: Path, regression_path: Path) -> None:
    import torch
    from esm.model.esm2 import ESM2

    with torch.random.fork_rng(devices=[]):  # fair-esm's init draws from torch's global RNG
        model = ESM2(num_layers=ESM_LAYERS, embed_dim=ESM_DIM, attention_heads=ESM_HEADS, alphabet="ESM-1b", token_dropout=True)
    with torch.no_grad():
        for name, param in model.named_parameters():
            param.copy_(torch.from_numpy(_param("esm." + name, tuple(param.shape))))
        model.embed_tokens.weight[model.padding_idx].zero_()
    state = model.state_dict()  # tied lm_head.weight / embed_tokens.weight stay one storage
    body = OrderedDict((f"encoder.{k}", v) for k, v in state.items() if not k.startswith("contact_head."))
    regression = OrderedDict((k, v) for k, v in state.items() if k.startswith("contact_head."))
    cfg = argparse.Namespace(
        encoder_layers=ESM_LAYERS, encoder_embed_dim=ESM_DIM, encoder_attention_heads=ESM_HEADS, token_dropout=True
    )
    torch.save({"model": body, "cfg": {"model": cfg}}, model_path)
    torch.save({"model": regression}, regression_path)


def _write_classifier(path: Path) -> None:
    import torch

    from virnucpro.models.classifier import MLPClassifier

    model = MLPClassifier(input_dim=DNABERT_HIDDEN + ESM_DIM, hidden_dim=CLASSIFIER_HIDDEN, num_classes=2)
    state = OrderedDict()
    for name, value in model.state_dict().items():
        if name == "bn1.num_batches_tracked":
            state[name] = torch.tensor(0, dtype=torch.long)
        elif name == "bn1.running_var":
            state[name] = torch.from_numpy(_uniform("clf." + name, tuple(value.shape), 0.5, 1.0))
        elif name == "bn1.running_mean":
            state[name] = torch.from_numpy(_uniform("clf." + name, tuple(value.shape), 0.1))
        else:
            state[name] = torch.from_numpy(_param("clf." + name, tuple(value.shape)))
    torch.save(state, path)
