"""ESM-2 protein embedder: our own forward pass over a safely loaded fair-esm checkpoint.

The forward reproduces fair-esm's ``ESM2`` (SPEC 5) up to FP32 rounding:

* token embedding, token-dropout rescaling (``(1 - 0.15 * 0.8) / (1 - observed
  mask ratio)``, i.e. 0.88 at inference) and zeroed padding rows;
* pre-LN transformer layers: fused QKV projection (q pre-scaled by
  ``head_dim ** -0.5``, folded into the weights at load, before the rotary
  embedding as in fair-esm), rotary embeddings identical to fair-esm's,
  ``scaled_dot_product_attention`` with a key-padding mask, output projection,
  FFN with exact (erf) GELU;
* final ``emb_layer_norm_after``; the representation is that of the model's own
  last layer (36 for the 3B model);
* embedding = mean over positions ``1 .. min(len, 1024)`` (BOS and EOS excluded;
  the input itself is never truncated).

Precision: with ``dtype`` bf16/fp16 the Linear weights live on the device in that
dtype and every matrix product (projections, attention, FFN) runs in it, while
the residual stream, LayerNorm (FP32 parameters), rotary embedding, the
embedding table and mean pooling stay FP32. The attention softmax runs inside
SDPA, whose fused kernels accumulate it in FP32; only the attention backends pinned
by :mod:`virnucpro.models.attention_check` may run. With ``compile`` on (default:
on CUDA), each layer goes through ``torch.compile`` so the rotary embedding and
the residual casts/adds fuse into a few kernels. No LM head, contact head or
attention maps are computed.

Batching: sequences are sorted by length, longest first (an out-of-memory
error then shows up on the first batch), and cut into batches whose padded size
``T * count`` stays within a token budget, where ``T`` is the longest length plus
BOS and EOS, rounded up to a multiple of :data:`PAD_MULTIPLE` (tensor-core friendly
shapes, fewer distinct lengths; the extra positions are ``<pad>``, masked in
attention and outside the mean, so the embeddings do not change).
With ``compile`` on, batch and length are the only dynamic dimensions;
:meth:`Esm2Embedder.warm_up` builds every graph (masked or not, batch of one or
more) before any work. Results
come back in input order. On CUDA an out-of-memory error splits the batch in
two, retries, and lowers the budget for the rest of the embedder's life.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, overload

import numpy as np
import torch
import torch.nn.functional as F

from virnucpro.errors import InputError, ModelNotAvailableError
from virnucpro.models.attention_check import attention_context
from virnucpro.models.batching import cuda_free_bytes, embed_sorted, estimate_batch_tokens
from virnucpro.models.esm2_checkpoint import Esm2Checkpoint, load_esm2_checkpoint
from virnucpro.models.fusion import FusedFunction, resolve_compile, warm_variants

logger = logging.getLogger(__name__)

MEAN_WINDOW = 1024
"""Residues averaged per sequence (positions 1 .. min(len, 1024))."""

CPU_BATCH_TOKENS = 4096
"""Default token budget on the CPU: big enough to amortise overheads, small in memory."""

PAD_MULTIPLE = 8
"""Batch widths (residues + BOS + EOS) are rounded up to a multiple of this."""


@overload
def padded_width(longest: int) -> int: ...
@overload
def padded_width(longest: np.ndarray) -> np.ndarray: ...
def padded_width(longest: int | np.ndarray) -> int | np.ndarray:
    """Token width of a batch whose longest sequence has ``longest`` residues: + BOS and EOS, rounded
    up to a multiple of :data:`PAD_MULTIPLE` (vectorised over arrays)."""
    return -(-(longest + 2) // PAD_MULTIPLE) * PAD_MULTIPLE

_LN_EPS = 1e-5  # fair-esm's ESM1bLayerNorm is nn.LayerNorm (or apex's) with the default eps
_MASK_RATIO_TRAIN = 0.15 * 0.8


# --------------------------------------------------------------------------- tokens


@dataclass(frozen=True)
class Esm1bTokens:
    """Ids of the ESM-1b alphabet and a byte -> token lookup table (-1: not a token)."""

    cls_idx: int
    eos_idx: int
    pad_idx: int
    mask_idx: int
    vocab_size: int
    lut: np.ndarray


def esm1b_tokens() -> Esm1bTokens:
    """Build the token ids from fair-esm's own ESM-1b alphabet (single source of truth)."""
    from esm.data import Alphabet

    alphabet = Alphabet.from_architecture("ESM-1b")
    lut = np.full(256, -1, dtype=np.int64)
    for tok in alphabet.standard_toks:
        if len(tok) == 1:
            lut[ord(tok)] = alphabet.tok_to_idx[tok]
    return Esm1bTokens(
        cls_idx=alphabet.cls_idx,
        eos_idx=alphabet.eos_idx,
        pad_idx=alphabet.padding_idx,
        mask_idx=alphabet.mask_idx,
        vocab_size=len(alphabet),
        lut=lut,
    )


def encode_sequences(seqs: Sequence[str], lut: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map all residues to token ids at once.

    Args:
        seqs: protein sequences (one-letter codes of the ESM-1b alphabet).
        lut: 256-entry byte -> token id table, -1 for bytes that are not tokens.

    Returns:
        ``(codes, lengths)``: the concatenated token ids (int64) and each sequence's length.

    Raises:
        InputError: a character outside the alphabet (fair-esm itself fails on these),
            or an empty sequence (its mean embedding is undefined).
    """
    lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
    joined = "".join(seqs)
    try:
        raw = joined.encode("ascii")
    except UnicodeEncodeError as exc:
        _raise_bad_char(seqs, lengths, exc.start, joined[exc.start])
    codes = lut[np.frombuffer(raw, dtype=np.uint8)]
    bad = np.flatnonzero(codes < 0)
    if bad.size:
        _raise_bad_char(seqs, lengths, int(bad[0]), joined[int(bad[0])])
    if lengths.size and lengths.min() == 0:
        raise InputError(f"empty protein sequence at position {int(np.argmin(lengths))} of the ESM-2 input")
    return codes, lengths


def _raise_bad_char(seqs: Sequence[str], lengths: np.ndarray, pos: int, char: str) -> None:
    seq_index = int(np.searchsorted(np.cumsum(lengths), pos, side="right"))
    raise InputError(
        f"protein sequence {seq_index} has character {char!r}, which is not in the ESM-2 alphabet"
    )


def fill_token_matrix(
    out: np.ndarray,
    idx: np.ndarray,
    codes: np.ndarray,
    offsets: np.ndarray,
    lengths: np.ndarray,
    tokens: Esm1bTokens,
) -> np.ndarray:
    """Write ``<cls> residues <eos> <pad>...`` rows for sequences ``idx`` into ``out``.

    Args:
        out: int64 array ``[len(idx), max(lengths[idx]) + 2]`` (e.g. a pinned tensor's numpy view).
        idx: which sequences, in row order.
        codes, lengths: from :func:`encode_sequences`; offsets: start of each sequence in ``codes``.
        tokens: the alphabet ids.

    Returns:
        ``out``, filled.
    """
    lens = lengths[idx]
    width = out.shape[1]
    out.fill(tokens.pad_idx)
    out[:, 0] = tokens.cls_idx
    col = np.arange(1, width - 1)
    inside = col[None, :] <= lens[:, None]
    src = offsets[idx][:, None] + col[None, :] - 1
    out[:, 1 : width - 1][inside] = codes[src[inside]]
    out[np.arange(len(idx)), lens + 1] = tokens.eos_idx
    return out


# --------------------------------------------------------------------------- batching


def default_batch_tokens(device: torch.device, dim: int, heads: int, dtype: torch.dtype) -> int:
    """Default budget: sized from free CUDA memory, :data:`CPU_BATCH_TOKENS` elsewhere."""
    if device.type != "cuda":
        return CPU_BATCH_TOKENS
    free = cuda_free_bytes(device)
    dtype_bytes = torch.empty((), dtype=dtype).element_size()
    return estimate_batch_tokens(free, dim, heads, dtype_bytes)


# --------------------------------------------------------------------------- model


ROTARY_TOLERANCE = 1e-6
"""Largest accepted distance of an FP32 rotary table entry from its float64 value (~16 ulp at 1.0)."""


def rotary_tables(inv_freq: torch.Tensor, size: int, attempts: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin ``[size, head_dim]`` of positions ``0 .. size-1``, as fair-esm's RotaryEmbedding builds them.

    fair-esm takes torch's FP32 ``cos``/``sin`` of ``outer(t, inv_freq)`` (repeated twice
    along the last axis), and so do we, to the bit. One guard is added: with torch 2.13's
    CPU wheel on an AVX-512 CPU, the first ``cos`` a process computes came out up to
    1.5e-4 off about one time in five (MKL's threaded vector-math path; later calls are
    within 1 ulp; ``MKL_NUM_THREADS=1`` hides it). That made the same input give one of
    two ESM-2 embeddings from run to run. Each table is therefore checked against a
    float64 numpy computation and recomputed when off; should it stay off, the float64
    values rounded to FP32 are used (within 1 ulp of torch's accurate result).
    """
    t = torch.arange(size, device=inv_freq.device).type_as(inv_freq)
    freqs = torch.outer(t, inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    angles = emb.detach().cpu().double().numpy()
    exact = {"cos": np.cos(angles), "sin": np.sin(angles)}
    tables = []
    for name in ("cos", "sin"):
        for _ in range(attempts):
            table = getattr(emb, name)()
            error = float(np.abs(table.detach().cpu().double().numpy() - exact[name]).max(initial=0.0))
            if error <= ROTARY_TOLERANCE:
                break
            logger.debug("rotary %s table off by %.2e; computing it again", name, error)
        else:
            logger.warning("rotary %s table stayed %.2e off after %d tries; using float64 values", name, error, attempts)
            table = torch.from_numpy(exact[name]).to(device=inv_freq.device, dtype=inv_freq.dtype)
        tables.append(table)
    return tables[0], tables[1]


class _Layer(NamedTuple):
    ln1_w: torch.Tensor
    ln1_b: torch.Tensor
    qkv_w: torch.Tensor
    qkv_b: torch.Tensor
    out_w: torch.Tensor
    out_b: torch.Tensor
    ln2_w: torch.Tensor
    ln2_b: torch.Tensor
    fc1_w: torch.Tensor
    fc1_b: torch.Tensor
    fc2_w: torch.Tensor
    fc2_b: torch.Tensor


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def _esm_layer(
    x: torch.Tensor,
    layer: _Layer,
    keep: torch.Tensor | None,
    cos: torch.Tensor,
    sin: torch.Tensor,
    heads: int,
    dtype: torch.dtype,
) -> torch.Tensor:
    """One pre-LN layer on the FP32 residual stream ``x`` [B, T, dim]; what ``--compile`` fuses.

    Eager, this is many passes over memory outside the matmuls (FP32 rotary: upcast,
    multiply, negate, concatenate, multiply, add, downcast; FP32 residual casts and
    adds; LayerNorm); compiled, Inductor fuses each run of them into one kernel.
    """
    b, t, dim = x.shape
    head_dim = dim // heads
    h = F.layer_norm(x, (dim,), layer.ln1_w, layer.ln1_b, _LN_EPS)
    qkv = F.linear(h.to(dtype), layer.qkv_w, layer.qkv_b).view(b, t, 3, heads, head_dim)
    # Rotary on q and k together, in FP32, on the already scaled q (fair-esm's order);
    # cos/sin are [t, 1, 1, head_dim] so they broadcast over (q|k, head).
    qk = qkv[:, :, :2].float()
    qk = (qk * cos + _rotate_half(qk) * sin).to(dtype)
    q, k = qk.transpose(1, 3).unbind(2)  # [b, heads, t, head_dim] each
    v = qkv[:, :, 2].transpose(1, 2)
    o = F.scaled_dot_product_attention(q, k, v, attn_mask=keep, scale=1.0)
    o = o.transpose(1, 2).reshape(b, t, dim)
    x = x + F.linear(o, layer.out_w, layer.out_b).float()
    h = F.layer_norm(x, (dim,), layer.ln2_w, layer.ln2_b, _LN_EPS)
    a = F.gelu(F.linear(h.to(dtype), layer.fc1_w, layer.fc1_b))
    return x + F.linear(a, layer.fc2_w, layer.fc2_b).float()


def has_padding(lens: np.ndarray) -> bool:
    """Whether a batch of sequences with ``lens`` residues has ``<pad>`` positions at its width."""
    return bool(lens.min() != lens.max() or padded_width(int(lens.max())) != int(lens.max()) + 2)


class Esm2Embedder:
    """Mean-pooled ESM-2 embeddings from our own forward pass.

    Build with :func:`load_esm2`. Attributes ``dim`` (model width, 2560 for the
    3B model), ``num_layers``, ``device``, ``dtype`` and ``batch_tokens`` (the
    current default budget; lowered after a CUDA out-of-memory error).
    """

    def __init__(
        self, ckpt: Esm2Checkpoint, device: torch.device, dtype: torch.dtype, compile: str = "auto"
    ) -> None:
        if dtype not in (torch.float32, torch.bfloat16, torch.float16):
            raise ValueError(f"unsupported ESM-2 dtype {dtype}")
        self.dim = ckpt.embed_dim
        self.num_layers = ckpt.num_layers
        self.heads = ckpt.attention_heads
        self.head_dim = self.dim // self.heads
        self.token_dropout = ckpt.token_dropout
        self.device = torch.device(device)
        self.dtype = dtype
        self.tokens = esm1b_tokens()
        state = ckpt.state_dict
        embed = state["embed_tokens.weight"]
        if embed.shape[0] < self.tokens.vocab_size:
            raise ModelNotAvailableError(
                f"{ckpt.path}: embed_tokens has {embed.shape[0]} rows, the ESM-1b alphabet needs "
                f"{self.tokens.vocab_size}"
            )
        fp32 = torch.float32
        self._embed = embed.to(device=self.device, dtype=fp32).contiguous()
        self._final_w = state["emb_layer_norm_after.weight"].to(device=self.device, dtype=fp32)
        self._final_b = state["emb_layer_norm_after.bias"].to(device=self.device, dtype=fp32)
        self._inv_freq = self._rotary_inv_freq(ckpt).to(device=self.device, dtype=fp32)
        self._rot_cache: tuple[torch.Tensor, torch.Tensor] | None = None
        self._layers = [self._load_layer(state, i) for i in range(self.num_layers)]
        self.batch_tokens = default_batch_tokens(self.device, self.dim, self.heads, dtype)
        self._oom_budget: int | None = None  # set by the first CUDA out-of-memory error
        # x [B, T, dim], keep [B, 1, 1, T], cos/sin [T, 1, 1, head_dim]: batch and length vary, nothing else.
        self._layer_fn = FusedFunction(_esm_layer, resolve_compile(compile, self.device), "ESM-2",
                                       dynamic_dims={0: (0, 1), 2: (0, 3), 3: (0,), 4: (0,)})
        logger.info(
            "ESM-2 %s: %d layers, dim %d, %d heads on %s in %s, batch budget %d tokens, %s",
            ckpt.path.name, self.num_layers, self.dim, self.heads, self.device, dtype, self.batch_tokens,
            "compiled layers" if self.compiled else "eager layers",
        )

    @property
    def compiled(self) -> bool:
        """True while the layers run through ``torch.compile`` (False after a fallback to eager)."""
        return self._layer_fn.compiled

    # ---- loading

    def _rotary_inv_freq(self, ckpt: Esm2Checkpoint) -> torch.Tensor:
        """The checkpoint's rotary ``inv_freq`` buffer (fair-esm loads it), else fair-esm's formula."""
        default = 1.0 / (10000 ** (torch.arange(0, self.head_dim, 2).float() / self.head_dim))
        keys = [f"layers.{i}.self_attn.rot_emb.inv_freq" for i in range(self.num_layers)]
        found = [ckpt.state_dict[k] for k in keys if k in ckpt.state_dict]
        if not found:
            return default
        first = found[0].float()
        if first.shape != default.shape or any(not torch.equal(first, f.float()) for f in found[1:]):
            raise ModelNotAvailableError(f"{ckpt.path}: unexpected rotary inv_freq buffers")
        return first

    def _load_layer(self, state: dict[str, torch.Tensor], i: int) -> _Layer:
        p = f"layers.{i}."
        scaling = self.head_dim**-0.5

        def low(t: torch.Tensor) -> torch.Tensor:
            return t.to(device=self.device, dtype=self.dtype).contiguous()

        def fp32(name: str) -> torch.Tensor:
            return state[p + name].to(device=self.device, dtype=torch.float32)

        def get(name: str) -> torch.Tensor:
            return state[p + name].float()

        # q is scaled by head_dim ** -0.5 before the rotary embedding in fair-esm; fold it in here.
        qkv_w = torch.cat([get(f"self_attn.{n}_proj.weight") * (scaling if n == "q" else 1.0) for n in "qkv"])
        qkv_b = torch.cat([get(f"self_attn.{n}_proj.bias") * (scaling if n == "q" else 1.0) for n in "qkv"])
        return _Layer(
            ln1_w=fp32("self_attn_layer_norm.weight"),
            ln1_b=fp32("self_attn_layer_norm.bias"),
            qkv_w=low(qkv_w),
            qkv_b=low(qkv_b),
            out_w=low(get("self_attn.out_proj.weight")),
            out_b=low(get("self_attn.out_proj.bias")),
            ln2_w=fp32("final_layer_norm.weight"),
            ln2_b=fp32("final_layer_norm.bias"),
            fc1_w=low(get("fc1.weight")),
            fc1_b=low(get("fc1.bias")),
            fc2_w=low(get("fc2.weight")),
            fc2_b=low(get("fc2.bias")),
        )

    # ---- forward

    def _rotary_tables(self, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """cos/sin ``[length, 1, 1, head_dim]``, values exactly as fair-esm's RotaryEmbedding builds them."""
        if self._rot_cache is None or self._rot_cache[0].shape[0] < length:
            self._rot_cache = rotary_tables(self._inv_freq, max(length, 1024))
        cos, sin = self._rot_cache
        return cos[:length, None, None, :], sin[:length, None, None, :]

    def forward_tokens(self, tokens: torch.Tensor, has_padding: bool = True) -> torch.Tensor:
        """Last-layer representations ``[B, T, dim]`` (FP32, after the final LayerNorm).

        Args:
            tokens: ``[B, T]`` ESM-1b token ids on the embedder's device.
            has_padding: False promises no ``<pad>`` token, so attention runs unmasked
                (lets SDPA pick its fastest kernel; fair-esm drops the mask then too).
        """
        pad = tokens.eq(self.tokens.pad_idx)
        x = F.embedding(tokens, self._embed)
        if self.token_dropout:
            is_mask = tokens.eq(self.tokens.mask_idx)
            x = x.masked_fill(is_mask.unsqueeze(-1), 0.0)
            observed = is_mask.sum(-1).to(x.dtype) / (~pad).sum(-1)
            x = x * (1 - _MASK_RATIO_TRAIN) / (1 - observed)[:, None, None]
        x = x * (1 - pad.unsqueeze(-1).type_as(x))
        keep = (~pad)[:, None, None, :] if has_padding else None
        cos, sin = self._rotary_tables(tokens.shape[1])
        with attention_context(self.device, self.dtype):
            for layer in self._layers:
                x = self._layer_fn(x, layer, keep, cos, sin, self.heads, self.dtype)
        return F.layer_norm(x, (self.dim,), self._final_w, self._final_b, _LN_EPS)

    # ---- embedding

    def _batch_tensors(
        self, idx: np.ndarray, codes: np.ndarray, offsets: np.ndarray, lengths: np.ndarray
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids ``[B, T]`` and mean-window sizes ``[B]`` for one batch, on the device."""
        lens = lengths[idx]
        pinned = self.device.type == "cuda"
        toks = torch.empty((len(idx), int(padded_width(int(lens.max())))), dtype=torch.int64, pin_memory=pinned)
        fill_token_matrix(toks.numpy(), idx, codes, offsets, lengths, self.tokens)
        window = torch.from_numpy(np.minimum(lens, MEAN_WINDOW))
        if pinned:
            window = window.pin_memory()
        return toks.to(self.device, non_blocking=pinned), window.to(self.device, non_blocking=pinned)

    def _pooled(self, toks: torch.Tensor, window: torch.Tensor, has_padding: bool) -> torch.Tensor:
        """Mean over residues 1..window of the last layer; FP32 [B, dim] on the device."""
        reps = self.forward_tokens(toks, has_padding)
        pos = torch.arange(toks.shape[1], device=self.device)
        weight = ((pos >= 1) & (pos <= window[:, None])).to(torch.float32)
        summed = (reps * weight.unsqueeze(-1)).sum(1)
        return summed / window[:, None].to(torch.float32)

    def encode(self, seqs: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """The token ids and lengths of ``seqs`` (:func:`encode_sequences`), no device work: what
        :meth:`embed` takes as ``encoded``. Raises InputError as :meth:`embed` would."""
        return encode_sequences(seqs, self.tokens.lut)

    def embed(
        self,
        seqs: Sequence[str],
        batch_tokens: int | None = None,
        on_batch: Callable[[int], None] | None = None,
        encoded: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> torch.Tensor:
        """Mean last-layer embeddings of protein sequences.

        Args:
            seqs: protein sequences (ESM-1b alphabet letters; no length limit).
            batch_tokens: padded-token budget per batch (``max_len * count``, BOS/EOS
                included); default :attr:`batch_tokens`. Never above the budget an
                earlier out-of-memory error left.
            on_batch: called after each batch with the number of sequences in it.
            encoded: ``seqs`` already encoded by :meth:`encode` (e.g. on a prefetch thread while
                the device computed something else); encoded here when None.

        Returns:
            float32 CPU tensor ``[len(seqs), dim]`` in input order.

        Raises:
            InputError: a sequence is empty or has a character outside the alphabet.
        """
        codes, lengths = self.encode(seqs) if encoded is None else encoded
        budget = self.batch_tokens if batch_tokens is None else batch_tokens
        if self._oom_budget is not None:
            budget = min(budget, self._oom_budget)
        offsets = np.concatenate(([0], np.cumsum(lengths)[:-1])) if len(seqs) else lengths

        def forward(idx: np.ndarray, _padded_length: int) -> torch.Tensor:
            toks, window = self._batch_tensors(idx, codes, offsets, lengths)
            return self._pooled(toks, window, has_padding(lengths[idx]))

        host, final_budget = embed_sorted(
            lengths, self.dim, self.device, budget, forward,
            padded_length=padded_width, on_batch=on_batch, label="ESM-2",
        )
        if final_budget < budget:
            self._oom_budget = final_budget
            self.batch_tokens = min(self.batch_tokens, final_budget)
        return host

    def warm_up(self, batch_tokens: int | None = None) -> dict[str, object]:
        """Run one small batch of every shape variant a run meets, so every graph is compiled (and
        every kernel chosen) here, never mid-run.

        The variants (dynamo specialises a batch of one; attention runs unmasked only when
        no position is padded): one sequence, unpadded and padded; several of one length,
        unpadded and padded; several of mixed lengths; each at two widths (a multiple of 16
        and one not), so the second shows that a new length reuses the graph. The batches
        stay within ``batch_tokens`` when it is given.

        Returns:
            ``{"seconds", "compiled", "compile_seconds", "compile_enabled", "fallback_reason",
            "variants"}``: see :func:`virnucpro.models.fusion.warm_variants`.
        """
        cap = batch_tokens or 10**9
        variants = []
        for width in (32, 24):
            full, short = width - 2, width - 5  # residues filling the width exactly, and fewer
            rows = max(2, min(3, cap // width))
            for name, lens in ((f"1x{width}", [full]), (f"1x{width} padded", [short]),
                               (f"{rows}x{width}", [full] * rows), (f"{rows}x{width} uniform padded", [short] * rows),
                               (f"{rows}x{width} mixed", [full] + [short] * (rows - 1))):
                seqs = ["A" * n for n in lens]
                variants.append((name, lambda seqs=seqs: self.embed(seqs, batch_tokens=len(seqs) * width)))
        return warm_variants(variants, self.device, lambda: self._layer_fn, label="ESM-2")


def load_esm2(path: Path, device: torch.device, dtype: torch.dtype, compile: str = "auto") -> Esm2Embedder:
    """Load an ESM-2 checkpoint safely and place our forward's weights on ``device``.

    Args:
        path: fair-esm ESM-2 ``.pt`` file (hyper-parameters are read from its cfg).
        device: where to run (weights are moved there once).
        dtype: float32, bfloat16 or float16 for weights and matrix products.
        compile: ``auto`` | ``on`` | ``off``: fuse each layer with ``torch.compile``
            (see :mod:`virnucpro.models.fusion`; ``auto`` = on CUDA only).

    Raises:
        UnsafeCheckpointError, ModelNotAvailableError: see :func:`load_esm2_checkpoint`.
    """
    ckpt = load_esm2_checkpoint(Path(path))
    return Esm2Embedder(ckpt, torch.device(device), dtype, compile)
