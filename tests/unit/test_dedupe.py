"""Identical frames are embedded once per shard, for each model, and every frame still gets its row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from tests.conftest import read_small_fasta as read_fasta
from virnucpro.models.batching import deduplicate, embed_unique
from virnucpro.models.dnabert_s import load_dnabert_s
from virnucpro.models.esm2 import load_esm2
from virnucpro.pipeline.model_kinds import EmbedPayload
from virnucpro.pipeline.parallel import EmbedderState, embed_shard
from virnucpro.pipeline.stages.feature_files import read_features
from virnucpro.pipeline.workqueue.manager import Task

CPU = torch.device("cpu")


def test_deduplicate_keeps_first_seen_order_and_maps_every_input() -> None:
    seqs = ["AC", "GT", "AC", "AC", "TT", "GT"]
    groups = deduplicate(seqs)
    assert groups.unique == ["AC", "GT", "TT"]
    assert [groups.unique[i] for i in groups.inverse] == seqs
    assert groups.duplicates == 3
    assert deduplicate([]).unique == [] and deduplicate([]).duplicates == 0


def test_embed_unique_embeds_each_distinct_sequence_once(tiny_ref: Path) -> None:
    model = load_dnabert_s(tiny_ref / "models" / "dnabert_tiny", CPU, torch.float32)
    _ids, seqs = read_fasta(tiny_ref / "expected" / "contigs_identified_nucleotide.fa")
    seqs = seqs[:6]
    doubled = seqs + seqs[::-1] + seqs[:2]
    asked: list[int] = []

    def embed(unique: list[str]) -> torch.Tensor:
        asked.append(len(unique))
        return model.embed(unique)

    got, groups = embed_unique(embed, doubled)
    assert asked == [len(set(seqs))] and groups.duplicates == len(doubled) - len(set(seqs))
    plain = model.embed(doubled)
    assert got.shape == plain.shape
    assert (got - plain).abs().max().item() < 1e-5  # SPEC 9 tolerance (batch layouts differ)
    for i, seq in enumerate(doubled):
        assert torch.equal(got[i], got[doubled.index(seq)])  # duplicates share one row exactly


def _write_fasta(path: Path, ids: list[str], seqs: list[str]) -> None:
    path.write_text("".join(f">{i}\n{s}\n" for i, s in zip(ids, seqs)))


def test_worker_body_reuses_duplicate_frames_and_reports_them(tiny_ref: Path, tmp_path: Path) -> None:
    """The shared worker body (both models) writes one row per frame ID and counts the reused frames."""
    _ids, proteins = read_fasta(tiny_ref / "expected" / "contigs_identified_protein.faa")
    seqs = proteins[:4] + proteins[:3]
    ids = [f"frame{i}" for i in range(len(seqs))]
    source, target = tmp_path / "shard.faa", tmp_path / "shard.esm.safetensors"
    _write_fasta(source, ids, seqs)
    embedder = load_esm2(tiny_ref / "models" / "esm2_t36_tiny.pt", CPU, torch.float32)
    progress: list[int] = []
    payload = EmbedPayload(str(source), str(target), {"model": "esm"})
    result = embed_shard(EmbedderState(embedder, None), Task("k", len(seqs), payload), progress.append)  # type: ignore[arg-type]
    assert result["frames"] == 7 and result["duplicates"] == 3
    assert sum(progress) == 7  # the dashboard still sees every frame of the shard
    features = read_features(target)
    assert features.ids == ids
    np.testing.assert_array_equal(features.embeddings[4:], features.embeddings[:3])
    expected = embedder.embed(seqs).numpy()
    assert np.abs(features.embeddings - expected).max() < 1e-5
