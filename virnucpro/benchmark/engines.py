"""Random-weight embedding engines, device timing and memory probes for the benchmark.

Models are built directly in memory on the device, no file involved:

* ESM-2: a random state dict with exactly fair-esm's key names and shapes (taken
  from an ``ESM2`` built on the meta device, which allocates nothing) is wrapped
  in an in-memory :class:`~virnucpro.models.esm2_checkpoint.Esm2Checkpoint` and
  handed to our :class:`~virnucpro.models.esm2.Esm2Embedder` or to fair-esm's own
  ``ESM2`` (:func:`~virnucpro.models.esm2_reference.build_fair_esm_model`, the
  published method). Both read the same tensors, so their outputs are comparable.
* DNABERT-S: our :class:`~virnucpro.models.dnabert_s.DnabertEncoder` with its
  default random initialisation under a fixed seed.

Weights are random but scaled like trained ones (``N(0, 1/fan_in)`` matrices,
unit LayerNorms, fair-esm's rotary frequencies), so activations keep realistic
magnitudes through all layers and precision drift is meaningful.
"""

from __future__ import annotations

import logging
import os
import resource
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from virnucpro.benchmark.flops import TransformerShape, matmul_flops
from virnucpro.models.esm2_checkpoint import Esm2Checkpoint

if TYPE_CHECKING:
    from virnucpro.models.esm2 import Esm2Embedder

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- ESM-2


def random_esm2_checkpoint(shape: TransformerShape, device: torch.device, seed: int = 0) -> Esm2Checkpoint:
    """An in-memory ESM-2 checkpoint of ``shape`` with random FP32 weights on ``device``.

    The same ``seed`` and device give the same tensors, so FP32, BF16 and the
    published engine all see one model.
    """
    import esm

    alphabet = esm.data.Alphabet.from_architecture("ESM-1b")
    with torch.device("meta"):
        skeleton = esm.model.esm2.ESM2(
            num_layers=shape.layers, embed_dim=shape.dim, attention_heads=shape.heads,
            alphabet=alphabet, token_dropout=True,
        )
    generator = torch.Generator(device=device).manual_seed(seed)
    head_dim = shape.dim // shape.heads
    inv_freq = 1.0 / (10000 ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    state: dict[str, torch.Tensor] = {}
    for name, meta in skeleton.state_dict().items():
        if name == "lm_head.weight":
            continue  # tied to embed_tokens.weight, filled in below
        if name.endswith("rot_emb.inv_freq"):
            state[name] = inv_freq.to(device)
        elif "layer_norm" in name and name.endswith(".weight"):
            state[name] = torch.ones(meta.shape, device=device)
        elif meta.ndim == 1:
            state[name] = 0.02 * torch.randn(meta.shape, device=device, generator=generator)
        elif name == "embed_tokens.weight":
            state[name] = torch.randn(meta.shape, device=device, generator=generator)
            state[name][alphabet.padding_idx] = 0.0
        else:
            std = meta.shape[-1] ** -0.5
            state[name] = std * torch.randn(meta.shape, device=device, generator=generator)
    state["lm_head.weight"] = state["embed_tokens.weight"]
    label = f"random-esm2-t{shape.layers}-d{shape.dim}"
    return Esm2Checkpoint(Path(label), shape.layers, shape.dim, shape.heads, True, state)


WARMUPS: list[dict[str, Any]] = []
"""Every engine warm-up of this process, in order: ``{model, precision, seconds, compile_seconds,
compiled, compile_enabled, fallback_reason, variants}`` (see :func:`warm_engine`)."""


_warming_since: float | None = None


def warmup_seconds_total() -> float:
    """Seconds this process spent in finished engine warm-ups (the acceptance keeps them outside its limits)."""
    return float(sum(float(w["seconds"]) for w in WARMUPS))


def warming_seconds() -> float:
    """Seconds the warm-up in progress has taken so far (0 when none is)."""
    since = _warming_since
    return 0.0 if since is None else time.perf_counter() - since


def warm_engine(embedder, model: str, precision: str, batch_tokens: int | None = None) -> dict[str, Any]:
    """``embedder.warm_up(batch_tokens)`` (every graph compiled, every kernel chosen), recorded in
    :data:`WARMUPS` with the model and precision."""
    global _warming_since
    _warming_since = time.perf_counter()
    try:
        report = {"model": model, "precision": precision, **embedder.warm_up(batch_tokens)}
        report["seconds"] = time.perf_counter() - _warming_since  # as the acceptance's clock saw it
        WARMUPS.append(report)
    finally:
        _warming_since = None
    return report


def build_esm2_ours(shape: TransformerShape, device: torch.device, dtype: torch.dtype, seed: int = 0,
                    compile: str = "auto"):
    """Our ESM-2 embedder (:class:`~virnucpro.models.esm2.Esm2Embedder`) with random weights."""
    from virnucpro.models.esm2 import Esm2Embedder

    ckpt = random_esm2_checkpoint(shape, device, seed)
    embedder = Esm2Embedder(ckpt, device, dtype, compile)
    del ckpt
    _empty_cache(device)
    return embedder


def build_esm2_published(shape: TransformerShape, device: torch.device, seed: int = 0):
    """fair-esm's own ``ESM2`` (FP32) with the same random weights: ``(model, alphabet)``."""
    from virnucpro.models.esm2_reference import build_fair_esm_model

    ckpt = random_esm2_checkpoint(shape, device, seed)
    with torch.device(device):  # parameters are created on the device, not in host memory first
        model, alphabet = build_fair_esm_model(ckpt, device)
    del ckpt
    _empty_cache(device)
    return model.requires_grad_(False), alphabet


# --------------------------------------------------------------------------- DNABERT-S


def build_dnabert(
    shape: TransformerShape, tokenizer, device: torch.device, dtype: torch.dtype, seed: int = 0,
    compile: str = "auto",
):
    """Our DNABERT-S embedder with random weights (same weights for every dtype at one seed)."""
    from virnucpro.models.dnabert_s import DnabertConfig, DnabertEncoder, DnabertSEmbedder

    if tokenizer.vocab_size > shape.vocab:
        raise ValueError(f"tokenizer has {tokenizer.vocab_size} tokens, the model only {shape.vocab}")
    config = DnabertConfig(
        hidden_size=shape.dim, num_hidden_layers=shape.layers, num_attention_heads=shape.heads,
        intermediate_size=shape.ffn, layer_norm_eps=1e-12, vocab_size=shape.vocab,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = DnabertEncoder(config, compile)
    encoder.set_matmul_dtype(dtype).to(device).eval().requires_grad_(False)
    return DnabertSEmbedder(encoder, tokenizer, device)


# --------------------------------------------------------------------------- timing and memory


def synchronize(device: torch.device) -> None:
    """Wait for queued device work (no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _empty_cache(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


def release(device: torch.device) -> None:
    """Return cached device memory after a model was dropped."""
    import gc

    gc.collect()
    _empty_cache(device)


class PeakMemory:
    """Peak memory of a block: CUDA ``max_memory_allocated``, or peak RSS on the CPU.

    On Linux the process's peak RSS (``VmHWM``) is reset at the start of the
    block through ``/proc/self/clear_refs``, so the figure is the block's own
    peak (model weights included). Where that is not possible it is the
    process's lifetime peak (``ru_maxrss``); :attr:`kind` says which.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.bytes = 0
        self.kind = ""

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.kind = "cuda_max_memory_allocated"
        elif _reset_peak_rss():
            self.kind = "peak_rss"
        else:
            self.kind = "peak_rss_process_lifetime"
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            synchronize(self.device)
            self.bytes = int(torch.cuda.max_memory_allocated(self.device))
        else:
            self.bytes = _peak_rss_bytes()


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def _peak_rss_bytes() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # kB on Linux


@dataclass
class TimedRun:
    """Result of the timed embedding passes of one engine.

    Attributes:
        seconds: wall time of the best pass (device work included).
        embeddings: float32 CPU ``[frames, dim]`` in input order (from the first timed pass).
        peak_memory_bytes: see :class:`PeakMemory`; peak_memory_kind: which figure.
        repeat_seconds: every timed pass, in order; warmup_seconds: the untimed warm-up pass.
    """

    seconds: float
    embeddings: torch.Tensor
    peak_memory_bytes: int
    peak_memory_kind: str
    repeat_seconds: list[float] = field(default_factory=list)
    warmup_seconds: float = 0.0


def timed_embed(
    embed: Callable[[Sequence[str]], torch.Tensor],
    seqs: Sequence[str],
    warmup: Sequence[str] | None,
    device: torch.device,
    repeats: int = 3,
) -> TimedRun:
    """Warm ``embed`` up on ``warmup`` (default: ``seqs`` itself), then time ``repeats`` passes
    over ``seqs`` and keep the best (steady state).

    Warming up on the full frame set pays every one-time cost outside the timed
    passes: CUDA context and cuBLAS handles, kernel selection and compilation
    for *every* batch shape the timed passes will see, allocator growth to its
    peak. Peak memory is that of the first timed pass.
    """
    warm = seqs if warmup is None else warmup
    began = time.perf_counter()
    if warm:
        embed(warm)
    synchronize(device)
    warmup_seconds = time.perf_counter() - began
    out: torch.Tensor | None = None
    peak: PeakMemory | None = None
    times: list[float] = []
    for attempt in range(max(1, repeats)):
        with PeakMemory(device) as probe:
            began = time.perf_counter()
            result = embed(seqs)
            synchronize(device)
            times.append(time.perf_counter() - began)
        if attempt == 0:
            out, peak = result, probe
    assert out is not None and peak is not None  # at least one pass ran
    return TimedRun(min(times), out, peak.bytes, peak.kind, times, warmup_seconds)


class PretokenizedDna:
    """A DNABERT-S tokenizer that serves token ids computed beforehand, so tokenising stays
    outside the timed passes (it is measured and reported on its own).

    Sequences it was not given are tokenised on the fly by the wrapped tokenizer.
    """

    def __init__(self, tokenizer, seqs: Sequence[str], ids: Sequence[list[int]]) -> None:
        self._tokenizer = tokenizer
        self._ids = dict(zip(seqs, ids))

    def __getattr__(self, name: str):
        return getattr(self._tokenizer, name)

    def encode(self, seqs: Sequence[str]) -> list[list[int]]:
        """Token ids of ``seqs`` (looked up, else tokenised)."""
        missing = [s for s in seqs if s not in self._ids]
        if missing:
            self._ids.update(zip(missing, self._tokenizer.encode(missing)))
        return [self._ids[s] for s in seqs]


@dataclass
class PretokenizedEsm:
    """ESM-2 frames tokenised before the timed passes: the engine's own batch plan, and each
    batch's padded token matrix and mean-window sizes on the host (pinned on CUDA), so a timed
    pass (:func:`embed_pretokenized_esm`) only copies them to the device and computes.

    Made by :func:`pretokenize_esm` with the engine's encoding functions
    (:func:`~virnucpro.models.esm2.encode_sequences`, :func:`~virnucpro.models.esm2.fill_token_matrix`).

    Attributes:
        lengths, codes, offsets: residues per frame, all residue codes, each frame's first code.
        budget: padded-token budget of the plan (lowered after an out-of-memory re-plan).
        batches: ``(first input index, count)`` -> ``(tokens [B, T], window [B])`` int64.
        tokenized_late: batches the plan did not foresee (after an out-of-memory re-plan), tokenised
            inside a timed pass; 0 in a clean measurement.
    """

    lengths: np.ndarray
    codes: np.ndarray
    offsets: np.ndarray
    budget: int
    batches: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    tokenized_late: int = 0

    def __len__(self) -> int:
        return len(self.lengths)


def pretokenize_esm(embedder: Esm2Embedder, seqs: Sequence[str], batch_tokens: int | None = None) -> PretokenizedEsm:
    """Tokenise ``seqs`` into the batches ``embedder.embed(seqs, batch_tokens=...)`` would run.

    Raises:
        InputError: a sequence is empty or has a character outside the ESM-2 alphabet.
    """
    from virnucpro.models.batching import plan_batches
    from virnucpro.models.esm2 import encode_sequences, padded_width

    codes, lengths = encode_sequences(seqs, embedder.tokens.lut)
    offsets = np.concatenate(([0], np.cumsum(lengths)[:-1])) if len(seqs) else lengths
    pre = PretokenizedEsm(lengths, codes, offsets, embedder.batch_tokens if batch_tokens is None else batch_tokens)
    for idx in plan_batches(padded_width(lengths), pre.budget):  # as the engine plans
        pre.batches[(int(idx[0]), len(idx))] = _esm_batch(embedder, pre, idx)
    return pre


def _esm_batch(embedder: Esm2Embedder, pre: PretokenizedEsm, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    from virnucpro.models.esm2 import MEAN_WINDOW, fill_token_matrix, padded_width

    pinned = embedder.device.type == "cuda"
    lens = pre.lengths[idx]
    toks = torch.empty((len(idx), int(padded_width(int(lens.max())))), dtype=torch.int64, pin_memory=pinned)
    fill_token_matrix(toks.numpy(), idx, pre.codes, pre.offsets, pre.lengths, embedder.tokens)
    window = torch.from_numpy(np.minimum(lens, MEAN_WINDOW))
    return toks, window.pin_memory() if pinned else window


def embed_pretokenized_esm(embedder: Esm2Embedder, pre: PretokenizedEsm) -> torch.Tensor:
    """``embedder.embed`` on frames tokenised by :func:`pretokenize_esm`: the same batches, the same
    device work (copies, forward, pooling) and the same result, without the tokenising.

    Returns:
        float32 CPU tensor ``[len(pre), dim]`` in input order.
    """
    from virnucpro.models.batching import embed_sorted
    from virnucpro.models.esm2 import has_padding, padded_width

    device, pinned = embedder.device, embedder.device.type == "cuda"

    def forward(idx: np.ndarray, _padded_length: int) -> torch.Tensor:
        key = (int(idx[0]), len(idx))  # the order is fixed, so its first index and count name a batch
        if key not in pre.batches:
            pre.tokenized_late += 1
            pre.batches[key] = _esm_batch(embedder, pre, idx)
        toks, window = pre.batches[key]
        # The engine's own pooled forward (Esm2Embedder.embed runs it on the matrices it builds).
        return embedder._pooled(toks.to(device, non_blocking=pinned), window.to(device, non_blocking=pinned),
                                has_padding(pre.lengths[idx]))

    host, pre.budget = embed_sorted(pre.lengths, embedder.dim, device, pre.budget, forward,
                                    padded_length=padded_width, label="ESM-2")
    return host


@dataclass(frozen=True)
class MatmulPeak:
    """Measured matrix-multiply rate of one dtype on the device."""

    dtype: str
    size: int
    iterations: int
    seconds: float

    @property
    def tflops(self) -> float:
        return matmul_flops(self.size) * self.iterations / self.seconds / 1e12


def measure_matmul_peak(device: torch.device, dtype: torch.dtype, size: int | None = None,
                        min_seconds: float = 0.3) -> MatmulPeak:
    """Time a loop of square matrix products (``out=`` into one buffer) in ``dtype``.

    On CUDA: ``size`` 8192 by default, timed with CUDA events after a warm-up.
    On the CPU: ``size`` 1024 by default, wall-clock, as many iterations as fit
    in ``min_seconds`` (at least 3), with torch's current thread count.
    """
    from virnucpro.models.precision import precision_name

    cuda = device.type == "cuda"
    size = size or (8192 if cuda else 1024)
    generator = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(size, size, device=device, generator=generator).to(dtype)
    b = torch.randn(size, size, device=device, generator=generator).to(dtype)
    c = torch.empty(size, size, device=device, dtype=dtype)
    torch.matmul(a, b, out=c)  # warm-up: library initialisation, kernel choice
    if cuda:
        for _ in range(3):
            torch.matmul(a, b, out=c)
        # Estimate the time of one product, then time enough of them for min_seconds.
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        torch.matmul(a, b, out=c)
        stop.record()
        torch.cuda.synchronize(device)
        iterations = max(10, int(min_seconds * 1000 / max(start.elapsed_time(stop), 1e-3)))
        start.record()
        for _ in range(iterations):
            torch.matmul(a, b, out=c)
        stop.record()
        torch.cuda.synchronize(device)
        seconds = start.elapsed_time(stop) / 1000
    else:
        iterations, began = 0, time.perf_counter()
        while iterations < 3 or time.perf_counter() - began < min_seconds:
            torch.matmul(a, b, out=c)
            iterations += 1
        seconds = time.perf_counter() - began
    del a, b, c
    _empty_cache(device)
    return MatmulPeak(precision_name(dtype), size, iterations, seconds)


def device_description(device: torch.device) -> dict[str, object]:
    """What the figures were measured on."""
    info: dict[str, object] = {
        "type": device.type,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(name=props.name, memory_bytes=int(props.total_memory),
                    compute_capability=f"{props.major}.{props.minor}", cuda=torch.version.cuda)
    else:
        info["name"] = _cpu_name()
    return info


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()

