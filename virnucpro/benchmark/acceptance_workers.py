"""Work-queue worker functions for ``scripts/gpu_acceptance.py``: random-weight DNABERT-S on a device.

Spawned workers import these by name (``virnucpro.benchmark.acceptance_workers:...``).
A task embeds ``frames`` synthetic frames made from its ``seed`` and saves the
embeddings to ``output`` (``.npy``, written to a temporary name and renamed).
``kill_marker``: the first attempt SIGKILLs its own worker (the marker file
remembers), so the queue must retry the task on a fresh process.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from virnucpro.pipeline.workqueue.manager import Task


def acceptance_frames(seed: int, frames: int) -> list[str]:
    """The DNA frames of one task (deterministic in ``seed``)."""
    from virnucpro.benchmark.synthetic import synthetic_frames

    return synthetic_frames([300], frames, seed).nucleotide


def init_acceptance_worker(device: str, init_args: Mapping[str, Any]) -> Any:
    """Build a random-weight DNABERT-S embedder (``init_args['size']``: ``small`` or ``full``) on ``device``."""
    import torch

    from virnucpro.benchmark import engines, flops, synthetic

    _esm_shape, dna_shape = flops.SIZES[str(init_args.get("size", "small"))]
    vocab = min(dna_shape.vocab, int(init_args.get("vocab", 256)))
    tokenizer = synthetic.train_dna_tokenizer(vocab_size=vocab, corpus_bp=int(init_args.get("corpus_bp", 20_000)))
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[str(init_args.get("precision", "fp32"))]
    # Eager: this worker tests fault handling, and compiling in each restarted worker would take the time.
    return engines.build_dnabert(dna_shape, tokenizer, torch.device(device), dtype, seed=0, compile="off")


def process_acceptance_task(embedder: Any, task: Task, progress: Callable[[int], None]) -> dict[str, Any]:
    """Embed the task's frames and save them; returns ``{"frames", "pid"}``."""
    payload = task.payload
    marker = payload.get("kill_marker")
    if marker and not Path(marker).exists():
        Path(marker).write_text("killed")
        os.kill(os.getpid(), signal.SIGKILL)
    seqs = acceptance_frames(int(payload["seed"]), int(payload["frames"]))
    out = embedder.embed(seqs, on_batch=progress).numpy()
    target = Path(payload["output"])
    temporary = target.with_name(target.name + ".tmp.npy")
    np.save(temporary, out)
    os.replace(temporary, target)
    return {"frames": len(seqs), "pid": os.getpid()}
