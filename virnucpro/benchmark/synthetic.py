"""Deterministic synthetic inputs for the benchmark: frames, contigs and a BPE tokenizer.

Frames: each synthetic chunk of ``C`` bp (300 or 500) is a run of random sense
codons (so frame F1 has no stop codon), and its F1 frame is cut out by the real
frame selection (:func:`virnucpro.sequence.sixframe.kept_frames`). A frame is
thus shaped exactly like a real kept frame of a full chunk: ``C // 3`` amino
acids (100 / 166) and ``3 * aa + 1`` bases clipped at the chunk end (300 / 499).

DNA tokens: DNABERT-S uses a byte-pair-encoding vocabulary of 4096 tokens
learnt from genomes. We train a BPE vocabulary of the same size on synthetic
random DNA with the ``tokenizers`` library (about a second) and wrap it in our
:class:`~virnucpro.models.dnabert_tokenizer.DnabertTokenizer`. It cuts random
DNA into about 4.7 bp per token, so a 300 / 500 bp frame becomes about 65 / 107
tokens with ``[CLS]`` and ``[SEP]``: the shapes the real tokenizer gives
(about 4-5 bp per token). The vocabulary itself is meaningless; only the
shapes and the tokenisation cost matter here.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from virnucpro.sequence.sixframe import kept_frames

_BASES = np.frombuffer(b"ACGT", dtype=np.uint8)
_STOPS = {"TAA", "TAG", "TGA"}
SENSE_CODONS = tuple("".join(c) for c in itertools.product("ACGT", repeat=3) if "".join(c) not in _STOPS)
"""The 61 codons of the standard code that are not stops."""

DNA_VOCAB_SIZE = 4096


@dataclass(frozen=True)
class FrameSet:
    """Synthetic kept frames, in generation order.

    Attributes:
        ids: frame IDs (``bench<C>_<i>_chunk_1F1``).
        nucleotide: the frames' DNA (DNABERT-S input).
        protein: the frames' proteins (ESM-2 input).
        chunk_lengths: the chunk length each frame came from.
    """

    ids: list[str]
    nucleotide: list[str]
    protein: list[str]
    chunk_lengths: list[int]

    def __len__(self) -> int:
        return len(self.ids)

    def subset_indices(self, count: int) -> list[int]:
        """Positions of the first ``count`` frames of every chunk length, in :meth:`subset` order."""
        return [i for length in sorted(set(self.chunk_lengths))
                for i in [j for j, c in enumerate(self.chunk_lengths) if c == length][:count]]

    def subset(self, count: int) -> FrameSet:
        """The first ``count`` frames of every chunk length (the same shapes, fewer frames)."""
        keep = self.subset_indices(count)
        return FrameSet([self.ids[i] for i in keep], [self.nucleotide[i] for i in keep],
                        [self.protein[i] for i in keep], [self.chunk_lengths[i] for i in keep])


def coding_chunk(rng: np.random.Generator, length: int) -> str:
    """A chunk of ``length`` bp made of random sense codons (plus 0-2 random bases at the end)."""
    codons = rng.integers(0, len(SENSE_CODONS), length // 3)
    tail = "".join(chr(b) for b in _BASES[rng.integers(0, 4, length % 3)])
    return "".join(SENSE_CODONS[i] for i in codons) + tail


def synthetic_frames(chunk_lengths: list[int], per_length: int, seed: int = 0) -> FrameSet:
    """``per_length`` F1 frames of coding chunks for each chunk length (deterministic in ``seed``)."""
    rng = np.random.default_rng(seed)
    ids: list[str] = []
    nucleotide: list[str] = []
    protein: list[str] = []
    lengths: list[int] = []
    for length in chunk_lengths:
        for i in range(per_length):
            chunk = coding_chunk(rng, length)
            frame = kept_frames(chunk)[0]  # F1: no stop codon by construction
            ids.append(f"bench{length}_{i}_chunk_1{frame.suffix}")
            nucleotide.append(frame.nucleotide)
            protein.append(frame.protein)
            lengths.append(length)
    return FrameSet(ids, nucleotide, protein, lengths)


def random_dna(rng: np.random.Generator, length: int) -> np.ndarray:
    """``length`` uniformly random bases as uint8 ASCII codes."""
    return _BASES[rng.integers(0, 4, length)]


def write_contigs(
    path: Path, total_bp: int, seed: int = 0, min_len: int = 1000, max_len: int = 20_000
) -> int:
    """Write a synthetic contig FASTA of about ``total_bp`` bases; returns the record count.

    Record lengths are log-uniform in ``[min_len, max_len]``; most of each
    record is made of long stretches of sense codons on the forward strand (1.5-6 kbp,
    short random gaps; viral genomes are about 90% coding), so most chunks have a kept
    frame, as in real contigs.
    """
    rng = np.random.default_rng(seed)
    written = records = 0
    with open(path, "w", encoding="ascii") as out:
        while written < total_bp:
            length = int(np.exp(rng.uniform(np.log(min_len), np.log(max_len))))
            seq = bytearray(random_dna(rng, length).tobytes())
            pos = int(rng.integers(0, 100))
            while pos < length - 300:
                gene = coding_chunk(rng, min(int(rng.integers(1500, 6000)), length - pos)).encode()
                seq[pos : pos + len(gene)] = gene
                pos += len(gene) + int(rng.integers(50, 300))
            records += 1
            out.write(f">contig_{records}\n")
            out.writelines(seq[i : i + 60].decode() + "\n" for i in range(0, length, 60))
            written += length
    return records


def train_dna_tokenizer(vocab_size: int = DNA_VOCAB_SIZE, seed: int = 0, corpus_bp: int = 400_000):
    """A DNABERT-2 style BPE tokenizer (``[CLS] $A [SEP]``) trained on random DNA.

    Args:
        vocab_size: vocabulary size, special tokens included (4096 as DNABERT-S).
        seed: seed of the training corpus.
        corpus_bp: training corpus size (400 kbp trains in about a second).

    Returns:
        A :class:`~virnucpro.models.dnabert_tokenizer.DnabertTokenizer`.
    """
    from virnucpro.models.dnabert_tokenizer import DnabertTokenizer, train_dna_bpe

    rng = np.random.default_rng(seed)
    corpus = [random_dna(rng, 1000).tobytes().decode() for _ in range(max(1, corpus_bp // 1000))]
    tokenizer = train_dna_bpe(corpus, vocab_size, exact=False)
    return DnabertTokenizer(tokenizer, "[CLS]", "[SEP]", "[PAD]", source="synthetic BPE (random DNA)")
