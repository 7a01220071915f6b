"""Throughput of the CPU stages per frame, on one core.

Measured with ``torch.set_num_threads(1)`` and ``TOKENIZERS_PARALLELISM=false``
(restored afterwards), on a synthetic contig file:

1. ``chunk_translate``: :func:`virnucpro.pipeline.translate.iter_chunk_frames`
   (reading, chunking, six-frame selection);
2. ``dna_tokenize``: BPE tokenisation of the kept frames' DNA (a 4096-token
   vocabulary, :func:`~virnucpro.benchmark.synthetic.train_dna_tokenizer`);
3. ``protein_tokenize``: ESM-1b token ids through the byte lookup table and
   padded batch matrices (:func:`virnucpro.models.esm2.encode_sequences`,
   :func:`~virnucpro.models.esm2.fill_token_matrix`);
4. ``join_classify_write``: joining real-size feature blocks (768 + 2560) by
   frame ID, the published classifier layout (3328 -> 512 -> 2) in float64 as
   ``predict`` runs it, and the result rows and per-chunk table
   (:mod:`virnucpro.pipeline.results`) written to a file.

Not included: the embedding models, feature-file and shard I/O, process start-up.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from virnucpro.benchmark import synthetic

logger = logging.getLogger(__name__)

DNABERT_DIM = 768
ESM_DIM = 2560
GPUS_COMPARED = 8


@dataclass(frozen=True)
class StageTiming:
    """One CPU stage: frames handled and wall seconds."""

    name: str
    frames: int
    seconds: float

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("inf")


@contextlib.contextmanager
def one_core() -> Iterator[None]:
    """Run torch and the tokenizers library on one thread for the duration of the block."""
    threads = torch.get_num_threads()
    previous = os.environ.get("TOKENIZERS_PARALLELISM")
    torch.set_num_threads(1)
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        if previous is None:
            os.environ.pop("TOKENIZERS_PARALLELISM", None)
        else:
            os.environ["TOKENIZERS_PARALLELISM"] = previous


def measure_cpu_stages(total_bp: int, chunk_length: int, tokenizer=None, seed: int = 0) -> list[StageTiming]:
    """Time the four CPU stages on about ``total_bp`` bases of synthetic contigs, on one core.

    Args:
        total_bp: size of the synthetic input.
        chunk_length: chunk length (500 for the SPEC 8 comparison).
        tokenizer: a DNA tokenizer; a synthetic 4096-token BPE one when None.
        seed: input seed.
    """
    from virnucpro.models.esm2 import esm1b_tokens
    from virnucpro.pipeline.translate import iter_chunk_frames

    tokenizer = tokenizer or synthetic.train_dna_tokenizer(seed=seed)
    esm_tokens = esm1b_tokens()
    with tempfile.TemporaryDirectory(prefix="virnucpro-bench-") as tmp, one_core():
        contigs = Path(tmp) / "contigs.fa"
        synthetic.write_contigs(contigs, total_bp, seed=seed)

        began = time.perf_counter()
        chunks = list(iter_chunk_frames(contigs, chunk_length))
        t_translate = time.perf_counter() - began
        ids = [fid for chunk in chunks for fid in chunk.frame_ids()]
        dna = [f.nucleotide for chunk in chunks for f in chunk.frames]
        protein = [f.protein for chunk in chunks for f in chunk.frames]
        n = len(ids)
        if n == 0:
            raise RuntimeError("synthetic contigs gave no kept frame")

        began = time.perf_counter()
        tokenizer.encode(dna)
        t_dna = time.perf_counter() - began

        began = time.perf_counter()
        _protein_batches(protein, esm_tokens)
        t_protein = time.perf_counter() - began

        t_join = _join_classify_write(ids, Path(tmp), seed)

    return [
        StageTiming("chunk_translate", n, t_translate),
        StageTiming("dna_tokenize", n, t_dna),
        StageTiming("protein_tokenize", n, t_protein),
        StageTiming("join_classify_write", n, t_join),
    ]


def _protein_batches(protein: list[str], tokens, budget: int = 4096) -> int:
    """Build every padded ESM-2 token matrix of ``protein``; returns the batch count."""
    from virnucpro.models.batching import plan_batches
    from virnucpro.models.esm2 import encode_sequences, fill_token_matrix

    codes, lengths = encode_sequences(protein, tokens.lut)
    offsets = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    batches = plan_batches(lengths + 2, budget)  # BOS and EOS
    for idx in batches:
        out = np.empty((len(idx), int(lengths[idx].max()) + 2), dtype=np.int64)
        fill_token_matrix(out, idx, codes, offsets, lengths, tokens)
    return len(batches)


def _join_classify_write(ids: list[str], tmp: Path, seed: int) -> float:
    """Seconds to join two feature blocks by ID, classify, and write both result tables."""
    from virnucpro.models.classifier import MLPClassifier
    from virnucpro.pipeline import results
    from virnucpro.pipeline.features import Features, join_by_id

    rng = np.random.default_rng(seed)
    order = rng.permutation(len(ids))  # the DNABERT-S block in another row order: the join must match IDs
    dnabert_rows = rng.standard_normal((len(ids), DNABERT_DIM), dtype=np.float32)
    dnabert = Features([ids[i] for i in order], dnabert_rows, {})
    esm = Features(list(ids), rng.standard_normal((len(ids), ESM_DIM), dtype=np.float32), {})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        classifier = MLPClassifier(DNABERT_DIM + ESM_DIM, 512, 2).double().eval()

    began = time.perf_counter()
    features = join_by_id(ids, dnabert, esm)
    with torch.inference_mode():
        logits = classifier(torch.from_numpy(features).double()).numpy()
    rows = results.frame_scores(ids, results.probabilities_from_logits(logits))
    with open(tmp / "prediction_results.txt", "w", encoding="utf-8") as out:
        out.write(results.PREDICTIONS_HEADER)
        out.writelines(row.line() for row in rows)
    with open(tmp / "prediction_results_highestscore.csv", "w", encoding="utf-8") as out:
        out.write(results.HIGHEST_SCORE_HEADER)
        results.write_highest_score_rows(sorted(results.chunk_calls(rows), key=lambda c: c.chunk_id), out)
    return time.perf_counter() - began


def cpu_frames_per_s(stages: list[StageTiming]) -> float:
    """Frames per second of one core running all stages one after another."""
    per_frame = sum(s.seconds / s.frames for s in stages)
    return 1.0 / per_frame if per_frame > 0 else float("inf")
