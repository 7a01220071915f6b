"""Synthetic frames, contigs and the BPE tokenizer have the shapes the benchmark documents."""

from __future__ import annotations

import numpy as np
import pytest

from virnucpro.benchmark import synthetic
from virnucpro.sequence.sixframe import kept_frames


@pytest.fixture(scope="module")
def tokenizer():
    return synthetic.train_dna_tokenizer(seed=0, corpus_bp=200_000)


def test_frames_are_shaped_like_full_chunks_and_deterministic():
    frames = synthetic.synthetic_frames([300, 500], 5, seed=7)
    assert len(frames) == 10
    assert [len(p) for p in frames.protein] == [100] * 5 + [166] * 5
    assert [len(n) for n in frames.nucleotide] == [300] * 5 + [499] * 5
    assert all("*" not in p for p in frames.protein)
    assert len(set(frames.ids)) == 10 and all(i.endswith("F1") for i in frames.ids)
    assert synthetic.synthetic_frames([300, 500], 5, seed=7) == frames
    warm = frames.subset(2)
    assert warm.chunk_lengths == [300, 300, 500, 500]


def test_coding_chunk_keeps_its_first_frame():
    rng = np.random.default_rng(0)
    chunk = synthetic.coding_chunk(rng, 301)
    assert len(chunk) == 301
    assert kept_frames(chunk)[0].suffix == "F1"


def test_bpe_tokenizer_gives_dnabert_like_token_counts(tokenizer):
    assert tokenizer.vocab_size == synthetic.DNA_VOCAB_SIZE
    frames = synthetic.synthetic_frames([300, 500], 20, seed=1)
    ids = tokenizer.encode(frames.nucleotide)
    assert all(i[0] == tokenizer.cls_id and i[-1] == tokenizer.sep_id for i in ids)
    mean300 = np.mean([len(i) for i in ids[:20]])
    mean500 = np.mean([len(i) for i in ids[20:]])
    assert 55 <= mean300 <= 80 and 90 <= mean500 <= 125  # about 4-5 bp per token


def test_contigs_have_about_one_kept_frame_per_chunk(tmp_path):
    from virnucpro.pipeline.stages.frames import iter_chunk_frames

    path = tmp_path / "c.fa"
    records = synthetic.write_contigs(path, 60_000, seed=2)
    chunks = list(iter_chunk_frames(path, 500))
    assert records >= 2
    assert sum(len(c.frames) for c in chunks) >= 0.5 * len(chunks)
