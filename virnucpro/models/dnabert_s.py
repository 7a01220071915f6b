"""Our DNABERT-S encoder (SPEC 4): loader, forward pass and batched embedder.

DNABERT-S is a post-LayerNorm BERT with ALiBi attention biases instead of position
embeddings and a gated-GELU MLP. We load a HuggingFace-format directory
(``config.json``, ``tokenizer.json``, ``model.safetensors`` or ``pytorch_model.bin``)
without executing any code from it, and run our own forward pass.

Speed: attention is :func:`torch.nn.functional.scaled_dot_product_attention` with one
additive mask shared by all layers, in the attention dtype: the ``[1, H, T, T]`` ALiBi
term (kept while the padded length stays the same; batches come longest first) alone
when no key is padded, else its sum with the ``[B, 1, 1, T]`` padding term, formed once
per batch;
sequences are sorted by length and packed into padded batches that fill a token
budget, then results are put back in input order.

Precision: with ``dtype`` bf16/fp16 the Linear weights and all matrix products
(attention included) run in that dtype, while the residual stream, LayerNorm and
the mean pooling stay FP32; the gated GELU runs in BF16 under BF16 (FP32 otherwise).
Attention runs only on the backends pinned by :mod:`virnucpro.models.attention_check`;
with ``compile`` on (default: on CUDA) each layer is fused by ``torch.compile`` (batch and
length dynamic; :meth:`DnabertSEmbedder.warm_up` builds every graph before any work).
The mask is in the attention dtype because SDPA requires q and mask to share a dtype;
the kernels still do the softmax in FP32.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from virnucpro.errors import ModelNotAvailableError
from virnucpro.models.alibi import alibi_slopes, alibi_term, attention_bias
from virnucpro.models.attention_check import attention_context
from virnucpro.models.batching import cuda_free_bytes, embed_sorted, estimate_batch_tokens
from virnucpro.models.dnabert_tokenizer import DnabertTokenizer
from virnucpro.models.fusion import COMPILE_MODES, FusedFunction, resolve_compile, warm_variants
from virnucpro.models.safe_load import load_weights_only

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
SAFETENSORS_FILE = "model.safetensors"
PYTORCH_FILE = "pytorch_model.bin"

# Default token budget per padded batch (longest padded length x sequence count).
# CPU: ~100 MB of attention mask and activations for DNABERT-S at ~130 tokens per
# 500-nt frame, big enough to keep matrix products efficient. CUDA: 4x that, a few
# GB at bf16 for the 117M model, well inside a 24 GB card; OOM halves it anyway.
DEFAULT_BATCH_TOKENS_CPU = 16_384
DEFAULT_BATCH_TOKENS_CUDA = 65_536
# Padded lengths are rounded up to a multiple of 8 (aligned mask rows for the CUDA
# kernels, tensor-core friendly shapes); the extra keys are masked like any padding.
PAD_MULTIPLE = 8

_SUPPORTED_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
_IGNORED_PREFIXES = ("pooler.", "cls.")  # pooler and masked-LM head: unused for embeddings
_IGNORED_KEYS = ("embeddings.position_ids", "embeddings.token_type_ids")  # index buffers, no weights


@dataclass(frozen=True)
class DnabertConfig:
    """The hyper-parameters we read from ``config.json``."""

    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    layer_norm_eps: float
    vocab_size: int
    type_vocab_size: int = 2

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @classmethod
    def from_json(cls, path: Path) -> DnabertConfig:
        """Read and check ``config.json``.

        Raises:
            ModelNotAvailableError: missing file, bad JSON, missing or invalid field.
        """
        if not path.is_file():
            raise ModelNotAvailableError(f"DNABERT-S config not found: {path} does not exist")
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelNotAvailableError(f"DNABERT-S config {path} is unreadable: {exc}") from exc
        fields = (
            "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "vocab_size",
        )
        missing = [name for name in (*fields, "layer_norm_eps") if name not in raw]
        if missing:
            raise ModelNotAvailableError(f"DNABERT-S config {path} lacks {', '.join(missing)}")
        try:
            config = cls(
                **{name: int(raw[name]) for name in fields},
                layer_norm_eps=float(raw["layer_norm_eps"]),
                type_vocab_size=int(raw.get("type_vocab_size", 2)),
            )
        except (TypeError, ValueError) as exc:
            raise ModelNotAvailableError(f"DNABERT-S config {path} has a non-numeric field: {exc}") from exc
        if min(config.hidden_size, config.num_hidden_layers, config.num_attention_heads) < 1 or (
            config.hidden_size % config.num_attention_heads
        ):
            raise ModelNotAvailableError(
                f"DNABERT-S config {path}: hidden_size {config.hidden_size} is not a positive multiple "
                f"of num_attention_heads {config.num_attention_heads}"
            )
        return config


class _EncoderLayer(nn.Module):
    """One post-LN block: ALiBi self-attention, then the gated-GELU MLP."""

    def __init__(self, config: DnabertConfig):
        super().__init__()
        d, ffn = config.hidden_size, config.intermediate_size
        self.num_heads = config.num_attention_heads
        self.ffn = ffn
        self.wqkv = nn.Linear(d, 3 * d)
        self.attn_out = nn.Linear(d, d)
        self.attn_norm = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.mlp_in = nn.Linear(d, 2 * ffn, bias=False)
        self.mlp_out = nn.Linear(ffn, d)
        self.mlp_norm = nn.LayerNorm(d, eps=config.layer_norm_eps)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """x: FP32 [B, T, d] residual stream; bias: [B or 1, H, T, T] in the matmul dtype."""
        mm_dtype = self.wqkv.weight.dtype
        batch, length, d = x.shape
        qkv = self.wqkv(x.to(mm_dtype)).view(batch, length, 3, self.num_heads, d // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each [B, H, T, head_dim]
        context = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        context = context.transpose(1, 2).reshape(batch, length, d)
        x = self.attn_norm(self.attn_out(context).float() + x)
        gated = self.mlp_in(x.to(mm_dtype))
        # Exact (erf) GELU gate in the matmul dtype under BF16 (the matmuls around it accumulate in
        # FP32; BF16 has FP32's range); FP32 under FP32, and under FP16, whose range the product may leave.
        gate, up = (gated if mm_dtype == torch.bfloat16 else gated.float()).split(self.ffn, dim=-1)
        hidden = (F.gelu(gate) * up).to(mm_dtype)
        return self.mlp_norm(self.mlp_out(hidden).float() + x)


def _run_layer(layer: _EncoderLayer, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """One layer as a plain function, so one compiled graph serves every layer (weights are inputs)."""
    return _EncoderLayer.forward(layer, x, bias)


class DnabertEncoder(nn.Module):
    """Embeddings + encoder layers; returns the FP32 last hidden states [B, T, d].

    ``compile`` (``auto`` | ``on`` | ``off``, see :mod:`virnucpro.models.fusion`) is
    resolved on the first forward, on the device the encoder then runs on.
    """

    def __init__(self, config: DnabertConfig, compile: str = "auto"):
        super().__init__()
        if compile not in COMPILE_MODES:
            raise ValueError(f"compile mode must be one of {', '.join(COMPILE_MODES)}, got {compile!r}")
        self.config = config
        self.compile_mode = compile
        self._layer_fn: FusedFunction | None = None
        self._alibi: torch.Tensor | None = None  # [1, H, T, T] of the last padded length, matmul dtype
        d = config.hidden_size
        self.word_embeddings = nn.Embedding(config.vocab_size, d)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, d)
        self.embedding_norm = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.layers = nn.ModuleList(_EncoderLayer(config) for _ in range(config.num_hidden_layers))
        slopes = torch.tensor(alibi_slopes(config.num_attention_heads), dtype=torch.float32)
        self.register_buffer("alibi_slopes", slopes, persistent=False)

    @property
    def matmul_dtype(self) -> torch.dtype:
        first: _EncoderLayer = self.layers[0]  # type: ignore[assignment]
        return first.wqkv.weight.dtype

    def set_matmul_dtype(self, dtype: torch.dtype) -> DnabertEncoder:
        """Cast the Linear layers only; embeddings and LayerNorms stay FP32."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                module.to(dtype)
        return self

    def forward(self, input_ids: torch.Tensor, mask: torch.Tensor, padded: bool | None = None) -> torch.Tensor:
        """input_ids: [B, T] long; mask: [B, T] bool (True on real tokens); padded: whether any
        key is padded, if the caller knows (saves reading ``mask`` back from the device)."""
        x = self.word_embeddings(input_ids) + self.token_type_embeddings.weight[0]
        x = self.embedding_norm(x)
        slopes: torch.Tensor = self.alibi_slopes  # type: ignore[assignment]
        length, dtype = input_ids.shape[1], self.matmul_dtype
        if self._alibi is None or self._alibi.shape[-1] != length or self._alibi.dtype != dtype \
                or self._alibi.device != input_ids.device:
            self._alibi = alibi_term(slopes, length, dtype)
        bias = attention_bias(slopes, mask, dtype, alibi=self._alibi, padded=padded)
        if self._layer_fn is None:
            enabled = resolve_compile(self.compile_mode, input_ids.device)
            # x [B, T, d]: batch and length vary; bias [1 or B, H, T, T]: batch and both lengths.
            self._layer_fn = FusedFunction(_run_layer, enabled, "DNABERT-S", dynamic_dims={1: (0, 1), 2: (0, 2, 3)})
        with attention_context(input_ids.device, self.matmul_dtype):
            for layer in self.layers:
                x = self._layer_fn(layer, x, bias)
        return x

    @property
    def compiled(self) -> bool:
        """True while the layers run through ``torch.compile`` (False before the first forward)."""
        return self._layer_fn is not None and self._layer_fn.compiled


def masked_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the real tokens ([CLS] and [SEP] included) of FP32 [B, T, d] -> [B, d]."""
    weights = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1)


def checkpoint_key_map(num_layers: int) -> dict[str, str]:
    """Published state-dict key (``bert.`` stripped) -> our parameter name."""
    keys = {
        "embeddings.word_embeddings.weight": "word_embeddings.weight",
        "embeddings.token_type_embeddings.weight": "token_type_embeddings.weight",
        "embeddings.LayerNorm.weight": "embedding_norm.weight",
        "embeddings.LayerNorm.bias": "embedding_norm.bias",
    }
    per_layer = {
        "attention.self.Wqkv": "wqkv",
        "attention.output.dense": "attn_out",
        "attention.output.LayerNorm": "attn_norm",
        "mlp.gated_layers": "mlp_in",
        "mlp.wo": "mlp_out",
        "mlp.layernorm": "mlp_norm",
    }
    for n in range(num_layers):
        for theirs, ours in per_layer.items():
            suffixes = ("weight",) if ours == "mlp_in" else ("weight", "bias")
            for suffix in suffixes:
                keys[f"encoder.layer.{n}.{theirs}.{suffix}"] = f"layers.{n}.{ours}.{suffix}"
    return keys


def read_state_dict(model_dir: Path) -> tuple[dict[str, torch.Tensor], Path]:
    """Tensors from ``model.safetensors`` (preferred) or ``pytorch_model.bin`` (weights only).

    Raises:
        ModelNotAvailableError: neither file exists, or the file cannot be read.
    """
    safetensors_path, pytorch_path = model_dir / SAFETENSORS_FILE, model_dir / PYTORCH_FILE
    try:
        if safetensors_path.is_file():
            from safetensors.torch import load_file

            return load_file(str(safetensors_path), device="cpu"), safetensors_path
        if pytorch_path.is_file():
            state = load_weights_only(pytorch_path, (), what="DNABERT-S weights", allowed_text="tensors")
            if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
                state = state["state_dict"]
            if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
                raise ValueError("not a plain state dict of tensors")
            return state, pytorch_path
    except ModelNotAvailableError:
        raise
    except Exception as exc:  # corrupt file, refused pickle content, ...
        path = safetensors_path if safetensors_path.is_file() else pytorch_path
        raise ModelNotAvailableError(f"DNABERT-S weights {path} are unreadable: {exc}") from exc
    raise ModelNotAvailableError(
        f"DNABERT-S weights not found in {model_dir}: no {SAFETENSORS_FILE} or {PYTORCH_FILE}"
    )


def load_encoder_weights(encoder: DnabertEncoder, state: dict[str, torch.Tensor], source: Path) -> None:
    """Check every key and shape, then copy the published weights into ``encoder`` (FP32).

    Raises:
        ModelNotAvailableError: a missing key, an unknown key, or a shape that does not match.
    """
    key_map = checkpoint_key_map(encoder.config.num_hidden_layers)
    ours = encoder.state_dict()
    mapped: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for key, tensor in state.items():
        key = key.removeprefix("bert.")
        if key.startswith(_IGNORED_PREFIXES) or key in _IGNORED_KEYS:
            continue
        if key not in key_map:
            unknown.append(key)
            continue
        name = key_map[key]
        if tuple(tensor.shape) != tuple(ours[name].shape):
            raise ModelNotAvailableError(
                f"DNABERT-S weights {source}: {key} has shape {tuple(tensor.shape)}, "
                f"config.json implies {tuple(ours[name].shape)}"
            )
        mapped[name] = tensor.to(torch.float32)
    if unknown:
        raise ModelNotAvailableError(
            f"DNABERT-S weights {source}: unexpected keys (not a DNABERT-2/-S encoder?): "
            f"{', '.join(sorted(unknown)[:5])}"
        )
    missing = [key for key, name in key_map.items() if name not in mapped]
    if missing:
        raise ModelNotAvailableError(
            f"DNABERT-S weights {source}: {len(missing)} missing key(s), e.g. {', '.join(missing[:3])}"
        )
    encoder.load_state_dict(mapped, strict=True)


def default_batch_tokens(device: torch.device, config: DnabertConfig, dtype: torch.dtype) -> int:
    """Token budget used when ``embed`` is not given one: sized from free memory on CUDA."""
    if device.type != "cuda":
        return DEFAULT_BATCH_TOKENS_CPU
    free = cuda_free_bytes(device)
    dtype_bytes = torch.empty((), dtype=dtype).element_size()
    # DNABERT-S frames are short (about 110 tokens for 500 bp), so the [B, H, T, T] bias is
    # sized for 256-token sequences rather than ESM-2's 512.
    return estimate_batch_tokens(
        free, config.hidden_size, config.num_attention_heads, dtype_bytes,
        reference_len=256, cap=DEFAULT_BATCH_TOKENS_CUDA,
    )


class DnabertSEmbedder:
    """Mean-pooled DNABERT-S embeddings of nucleotide strings.

    Attributes:
        dim: embedding width (768 for DNABERT-S).
        device: where the encoder runs.
        dtype: dtype of the Linear weights and matrix products.
    """

    def __init__(self, encoder: DnabertEncoder, tokenizer: DnabertTokenizer, device: torch.device):
        self.encoder = encoder
        self.tokenizer = tokenizer
        self.device = device
        self.dtype = encoder.matmul_dtype
        self.dim = encoder.config.hidden_size
        self._budget_cap: int | None = None  # lowered after an out-of-memory error

    def embed(
        self,
        seqs: Sequence[str],
        batch_tokens: int | None = None,
        on_batch: Callable[[int], None] | None = None,
    ) -> torch.Tensor:
        """Embed ``seqs``; returns FP32 CPU [N, dim] in input order.

        Args:
            seqs: upper-case nucleotide strings.
            batch_tokens: max padded tokens per batch (longest x count); default
                :data:`DEFAULT_BATCH_TOKENS_CPU`, or sized from free GPU memory (at most
                :data:`DEFAULT_BATCH_TOKENS_CUDA`).
            on_batch: called after each batch with the number of sequences in it.
        """
        budget = (
            batch_tokens if batch_tokens is not None
            else default_batch_tokens(self.device, self.encoder.config, self.dtype)
        )
        if budget < 1:
            raise ValueError(f"batch_tokens must be positive, got {budget}")
        if self._budget_cap is not None:
            budget = min(budget, self._budget_cap)
        token_ids = self.tokenizer.encode(seqs)
        lengths = np.fromiter((len(ids) for ids in token_ids), dtype=np.int64, count=len(token_ids))

        def forward(rows: np.ndarray, padded_length: int) -> torch.Tensor:
            return self._embed_batch([token_ids[i] for i in rows], padded_length)

        host, final_budget = embed_sorted(
            lengths, self.dim, self.device, budget, forward,
            padded_length=lambda n: -(-n // PAD_MULTIPLE) * PAD_MULTIPLE, on_batch=on_batch, label="DNABERT-S",
        )
        if final_budget < budget:
            self._budget_cap = final_budget
        return host

    def _embed_batch(self, batch_ids: list[list[int]], padded_length: int) -> torch.Tensor:
        """Forward one padded batch; FP32 [B, dim] on the device."""
        pinned = self.device.type == "cuda"
        input_ids = np.full((len(batch_ids), padded_length), self.tokenizer.pad_id, dtype=np.int64)
        lengths = np.empty(len(batch_ids), dtype=np.int64)
        for row, ids in enumerate(batch_ids):
            input_ids[row, : len(ids)] = ids
            lengths[row] = len(ids)
        ids_t, lengths_t = torch.from_numpy(input_ids), torch.from_numpy(lengths)
        if pinned:
            ids_t, lengths_t = ids_t.pin_memory(), lengths_t.pin_memory()
        ids_t = ids_t.to(self.device, non_blocking=pinned)
        lengths_t = lengths_t.to(self.device, non_blocking=pinned)
        mask = torch.arange(padded_length, device=self.device)[None, :] < lengths_t[:, None]
        hidden = self.encoder(ids_t, mask, padded=bool(lengths.min() < padded_length))
        return masked_mean(hidden, mask)

    @property
    def compiled(self) -> bool:
        """True while the layers run through ``torch.compile``: after :meth:`warm_up` (or the first
        batch) when compiling is on; False when it is off or fell back to eager."""
        return self.encoder.compiled

    def warm_up(self, batch_tokens: int | None = None) -> dict[str, object]:
        """Run one small batch of every shape variant a run meets, so every graph is compiled (and
        every kernel chosen) here, never mid-run.

        The variants (dynamo specialises a batch of one; the bias is ``[1, H, T, T]`` without
        padding and ``[B, H, T, T]`` with it): one sequence; several of one length; several of
        mixed lengths; each at two padded lengths (one a multiple of 16, one not), so the second
        shows that a new length reuses the graph. Token ids are synthetic, so the tokenizer is
        not involved. The batches stay within ``batch_tokens`` when it is given.

        Returns:
            ``{"seconds", "compiled", "compile_seconds", "variants"}``: see
            :func:`virnucpro.models.fusion.warm_variants`.
        """
        cap = batch_tokens or 10**9
        token = min(5, self.tokenizer.vocab_size - 1)

        def batch(lengths: list[int], padded_length: int) -> Callable[[], object]:
            return lambda: self._embed_batch([[token] * n for n in lengths], padded_length)

        variants = []
        for padded_length in (32, 24):
            rows = max(2, min(3, cap // padded_length))
            variants += [
                (f"1x{padded_length}", batch([padded_length], padded_length)),
                (f"1x{padded_length} padded", batch([padded_length - 3], padded_length)),
                (f"{rows}x{padded_length}", batch([padded_length] * rows, padded_length)),
                (f"{rows}x{padded_length} padded", batch([padded_length] + [padded_length - 5] * (rows - 1),
                                                           padded_length)),
            ]
        return warm_variants(variants, self.device, lambda: self.encoder._layer_fn, label="DNABERT-S")


def load_dnabert_s(
    model_dir: Path, device: torch.device, dtype: torch.dtype, compile: str = "auto"
) -> DnabertSEmbedder:
    """Load a DNABERT-S directory (no remote code) into a ready embedder.

    Args:
        model_dir: HuggingFace-format directory with ``config.json``, ``tokenizer.json``
            and ``model.safetensors`` or ``pytorch_model.bin``.
        device: where to run.
        dtype: float32, bfloat16 or float16: Linear weights and matrix products.
        compile: ``auto`` | ``on`` | ``off``: fuse each layer with ``torch.compile``
            (``auto`` = on CUDA only; falls back to eager where compiling fails).

    Raises:
        ModelNotAvailableError: a file is missing or invalid, or a weight is missing or misshapen.
        ValueError: an unsupported dtype.
    """
    if dtype not in _SUPPORTED_DTYPES:
        raise ValueError(f"unsupported dtype {dtype}: use float32, bfloat16 or float16")
    model_dir, device = Path(model_dir), torch.device(device)
    if not model_dir.is_dir():
        raise ModelNotAvailableError(f"DNABERT-S model directory not found: {model_dir}")
    config = DnabertConfig.from_json(model_dir / CONFIG_FILE)
    tokenizer = DnabertTokenizer.from_dir(model_dir)
    if tokenizer.vocab_size > config.vocab_size:
        raise ModelNotAvailableError(
            f"DNABERT-S in {model_dir}: tokenizer has {tokenizer.vocab_size} tokens, "
            f"config vocab_size is {config.vocab_size}"
        )
    state, source = read_state_dict(model_dir)
    encoder = DnabertEncoder(config, compile)
    load_encoder_weights(encoder, state, source)
    encoder.set_matmul_dtype(dtype).to(device).eval().requires_grad_(False)
    logger.info(
        "DNABERT-S loaded from %s: %d layers, %d heads, dim %d, %s on %s",
        model_dir, config.num_hidden_layers, config.num_attention_heads, config.hidden_size, dtype, device,
    )
    return DnabertSEmbedder(encoder, tokenizer, device)
