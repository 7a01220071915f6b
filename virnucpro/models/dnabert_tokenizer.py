"""DNABERT-S tokenizer: the checkpoint's own ``tokenizer.json`` (byte-pair encoding).

Every sequence becomes ``[CLS] tokens [SEP]`` (SPEC 4). The special-token ids are
looked up in the tokenizer, never hard-coded. Tokenisation runs in the Rust
``tokenizers`` library over whole lists of sequences; no Python loop per token.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from tokenizers import Tokenizer

from virnucpro.errors import ModelNotAvailableError

logger = logging.getLogger(__name__)

TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
SPECIAL_TOKENS = ("[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]")
_DEFAULT_SPECIAL = {"cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]"}
_BASES = ("A", "C", "G", "T")
_PROBE = "ACGTACGT"


class DnabertTokenizer:
    """Turns nucleotide strings into token-id lists ``[CLS] ... [SEP]``.

    Attributes:
        cls_id: id of the ``[CLS]`` token.
        sep_id: id of the ``[SEP]`` token.
        pad_id: id of the ``[PAD]`` token (only ever used on masked positions).
        vocab_size: number of ids the tokenizer can produce.
    """

    def __init__(self, tokenizer: Tokenizer, cls_token: str, sep_token: str, pad_token: str, source: str):
        self._tok = tokenizer
        # Padding and truncation are ours to do: the published tool never truncates.
        self._tok.no_padding()
        self._tok.no_truncation()
        _disable_word_cache(tokenizer)
        self.cls_id = _token_id(tokenizer, cls_token, source)
        self.sep_id = _token_id(tokenizer, sep_token, source)
        self.pad_id = _token_id(tokenizer, pad_token, source)
        self.vocab_size = tokenizer.get_vocab_size(with_added_tokens=True)
        self._add_specials_ourselves = tokenizer.post_processor is None
        # encode_batch_fast (tokenizers >= 0.20) skips offset tracking we never use.
        self._encode_batch = getattr(tokenizer, "encode_batch_fast", tokenizer.encode_batch)
        self._check_template(source)

    @classmethod
    def from_dir(cls, model_dir: Path) -> DnabertTokenizer:
        """Load ``tokenizer.json`` (and special-token names from ``tokenizer_config.json`` if present).

        Raises:
            ModelNotAvailableError: the file is missing or unreadable, or lacks a special token.
        """
        path = Path(model_dir) / TOKENIZER_FILE
        if not path.is_file():
            raise ModelNotAvailableError(f"DNABERT-S tokenizer not found: {path} does not exist")
        try:
            tokenizer = Tokenizer.from_file(str(path))
        except Exception as exc:  # the Rust library raises a bare Exception
            raise ModelNotAvailableError(f"DNABERT-S tokenizer {path} is unreadable: {exc}") from exc
        names = _special_token_names(Path(model_dir) / TOKENIZER_CONFIG_FILE)
        return cls(tokenizer, names["cls_token"], names["sep_token"], names["pad_token"], str(path))

    def encode(self, seqs: Sequence[str]) -> list[list[int]]:
        """Token ids of each sequence, ``[CLS] tokens [SEP]``, unpadded.

        Sequences are upper-cased first (the pipeline already hands over upper case;
        this only protects direct callers, as the BPE vocabulary is upper case).
        """
        if not seqs:
            return []
        encodings = self._encode_batch([s.upper() for s in seqs])
        if self._add_specials_ourselves:
            return [[self.cls_id, *e.ids, self.sep_id] for e in encodings]
        return [e.ids for e in encodings]

    def _check_template(self, source: str) -> None:
        """Make sure the post-processor (if any) wraps a sequence as ``[CLS] ... [SEP]``."""
        ids = self.encode([_PROBE])[0]
        wrapped = len(ids) >= 3 and ids[0] == self.cls_id and ids[-1] == self.sep_id
        if not wrapped or {self.cls_id, self.sep_id} & set(ids[1:-1]):
            raise ModelNotAvailableError(
                f"DNABERT-S tokenizer {source} does not produce [CLS] tokens [SEP] "
                f"(got ids {ids} for {_PROBE!r})"
            )
        if self._add_specials_ourselves:
            logger.debug("tokenizer %s has no post-processor: adding [CLS]/[SEP] ourselves", source)


def _disable_word_cache(tokenizer: Tokenizer) -> None:
    """Turn off the BPE model's word cache (issue 30 follow-up).

    ``tokenizers`` remembers the tokens of each pre-tokenised word it has seen, for
    thousands of words; a DNA frame has no whitespace, so every frame is one word and the
    cache fills with frames that never come back (each distinct frame is tokenised once per
    run: shards are deduplicated and later repeats reuse an earlier row). Measured: about
    4.8 MiB per 1,000 150-nt frames, up to ~95 MiB per worker, with no gain. The ids do not
    depend on the cache. ``_resize_cache`` is the binding's own (underscored; present in tokenizers 0.23);
    a model or version without it keeps its default cache.
    """
    resize = getattr(tokenizer.model, "_resize_cache", None)
    if resize is not None:
        resize(0)


def _token_id(tokenizer: Tokenizer, token: str, source: str) -> int:
    token_id = tokenizer.token_to_id(token)
    if token_id is None:
        raise ModelNotAvailableError(f"DNABERT-S tokenizer {source} has no {token} token")
    return token_id


def _special_token_names(config_path: Path) -> dict[str, str]:
    """Special-token strings from ``tokenizer_config.json``; BERT defaults when absent."""
    names = dict(_DEFAULT_SPECIAL)
    if not config_path.is_file():
        return names
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelNotAvailableError(
            f"DNABERT-S tokenizer config {config_path} is unreadable: {exc}"
        ) from exc
    for key in names:
        value = config.get(key)
        if isinstance(value, dict):  # AddedToken serialised as {"content": ...}
            value = value.get("content")
        if isinstance(value, str) and value:
            names[key] = value
    return names


# ---------------------------------------------------------------------------
# building a DNABERT-2 style BPE tokenizer (demo models, benchmark)


def train_dna_bpe(corpus: Iterable[str], vocab_size: int, *, exact: bool) -> Tokenizer:
    """A DNABERT-2 style BPE tokenizer over A/C/G/T trained on ``corpus``: ``[CLS] $A [SEP]``.

    Args:
        corpus: DNA strings to learn merges from.
        vocab_size: vocabulary size, the special tokens and the four bases included.
        exact: use the small pure-Python trainer here, whose merges are a pure
            function of the corpus (byte-identical on every machine; fine for a few
            hundred tokens), instead of the ``tokenizers`` library's fast trainer.

    Returns:
        A ``tokenizers.Tokenizer``; wrap it in :class:`DnabertTokenizer` to use it.
    """
    from tokenizers import models, pre_tokenizers, processors, trainers

    if exact:
        merges = _train_bpe(list(corpus), vocab_size - len(SPECIAL_TOKENS) - len(_BASES))
        vocab: dict[str, int] = {}
        for token in (*SPECIAL_TOKENS, *_BASES, *(a + b for a, b in merges)):
            vocab.setdefault(token, len(vocab))
        tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="[UNK]"))
        tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
        tokenizer.add_special_tokens(list(SPECIAL_TOKENS))
    else:
        tokenizer = Tokenizer(models.BPE(unk_token="[UNK]"))
        tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS), show_progress=False)
        tokenizer.train_from_iterator(corpus, trainer=trainer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", tokenizer.token_to_id("[CLS]")), ("[SEP]", tokenizer.token_to_id("[SEP]"))],
    )
    return tokenizer


def _train_bpe(words: list[str], n_merges: int) -> list[tuple[str, str]]:
    """Plain byte-pair encoding: merge the most frequent adjacent pair, ties by the pair's text."""
    seqs = [list(w) for w in words]
    merges: list[tuple[str, str]] = []
    for _ in range(n_merges):
        pairs: Counter[tuple[str, str]] = Counter()
        for seq in seqs:
            pairs.update(zip(seq, seq[1:]))
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        merged = best[0] + best[1]
        for i, seq in enumerate(seqs):
            out: list[str] = []
            j = 0
            while j < len(seq):
                if j + 1 < len(seq) and seq[j] == best[0] and seq[j + 1] == best[1]:
                    out.append(merged)
                    j += 2
                else:
                    out.append(seq[j])
                    j += 1
            seqs[i] = out
    return merges
