"""Random-weight model files at the benchmark's shapes, in the formats ``predict`` loads.

The GPU acceptance runs the real pipeline (``virnucpro predict``) at real model
sizes without downloading anything: this writes

* an ESM-2 checkpoint in fair-esm's format (``{"model": {"encoder.<key>": ...},
  "cfg": {"model": Namespace(...)}}``) with the weights of
  :func:`~virnucpro.benchmark.engines.random_esm2_checkpoint`. Stored in BF16: the
  3B model is 5.6 GB on disk instead of 11 GB, written and read twice as fast; the
  engines upcast it (FP32 runs then use BF16-rounded random weights, which changes
  nothing this check compares: every run reads the same file);
* a DNABERT-S directory (``config.json``, ``tokenizer.json``, ``model.safetensors``
  under the published key names) with :func:`~virnucpro.benchmark.engines.build_dnabert`'s
  random encoder and the synthetic BPE tokenizer;
* a classifier state dict of the published layout for ``dnabert dim + esm dim`` features.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from virnucpro.benchmark import flops


@dataclass(frozen=True)
class ModelFiles:
    """Where :func:`write_random_models` put each model (the ``predict`` options that take them)."""

    esm_path: Path
    dnabert_dir: Path
    classifier_path: Path

    def predict_args(self) -> list[str]:
        return ["--esm-model", str(self.esm_path), "--dnabert-model", str(self.dnabert_dir),
                "--model-path", str(self.classifier_path)]


def write_random_models(directory: Path, size: str = "full", seed: int = 0, vocab: int = 4096,
                        device: torch.device | None = None) -> ModelFiles:
    """Write the three models of ``size`` (``small`` or ``full``, :data:`flops.SIZES`) under ``directory``.

    ``device``: where the random ESM-2 weights are drawn (a GPU draws 2.8 billion in well under a
    second, a CPU core in tens of seconds); they are cast to BF16 there and copied to the host."""
    from virnucpro.benchmark import engines, synthetic
    from virnucpro.models.classifier import MLPClassifier
    from virnucpro.models.dnabert_s import checkpoint_key_map

    directory.mkdir(parents=True, exist_ok=True)
    esm_shape, dna_shape = flops.SIZES[size]
    ckpt = engines.random_esm2_checkpoint(esm_shape, device or torch.device("cpu"), seed)
    body = {}
    for key in list(ckpt.state_dict):
        body[f"encoder.{key}"] = ckpt.state_dict.pop(key).to(torch.bfloat16).cpu()
    cfg = argparse.Namespace(encoder_layers=esm_shape.layers, encoder_embed_dim=esm_shape.dim,
                             encoder_attention_heads=esm_shape.heads, token_dropout=True)
    esm_path = directory / f"random-esm2-t{esm_shape.layers}-d{esm_shape.dim}.pt"
    torch.save({"model": body, "cfg": {"model": cfg}}, esm_path)
    del body, ckpt
    if device is not None and device.type == "cuda":
        torch.cuda.empty_cache()

    tokenizer = synthetic.train_dna_tokenizer(vocab_size=min(vocab, dna_shape.vocab), seed=seed)
    embedder = engines.build_dnabert(dna_shape, tokenizer, torch.device("cpu"), torch.float32, seed, compile="off")
    dnabert_dir = directory / "dnabert"
    dnabert_dir.mkdir(exist_ok=True)
    ours = embedder.encoder.state_dict()
    published = {f"bert.{theirs}": ours[name].contiguous()
                 for theirs, name in checkpoint_key_map(dna_shape.layers).items()}
    from safetensors.torch import save_file

    save_file(published, str(dnabert_dir / "model.safetensors"), metadata={"format": "pt"})
    (dnabert_dir / "tokenizer.json").write_text(tokenizer._tok.to_str(), encoding="utf-8")
    (dnabert_dir / "tokenizer_config.json").write_text(json.dumps(
        {"cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]", "unk_token": "[UNK]",
         "mask_token": "[MASK]"}) + "\n", encoding="utf-8")
    (dnabert_dir / "config.json").write_text(json.dumps({
        "hidden_size": dna_shape.dim, "num_hidden_layers": dna_shape.layers,
        "num_attention_heads": dna_shape.heads, "intermediate_size": dna_shape.ffn, "layer_norm_eps": 1e-12,
        "vocab_size": dna_shape.vocab, "type_vocab_size": 2, "model_type": "bert"}, indent=1) + "\n",
        encoding="utf-8")

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        classifier = MLPClassifier(input_dim=dna_shape.dim + esm_shape.dim)
    classifier_path = directory / "classifier.pth"
    torch.save(classifier.state_dict(), classifier_path)
    return ModelFiles(esm_path, dnabert_dir, classifier_path)
