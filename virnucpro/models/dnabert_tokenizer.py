"""DNABERT-S tokenizer: the checkpoint's own ``tokenizer.json`` (byte-pair encoding).

Every sequence becomes ``[CLS] tokens [SEP]`` (SPEC 4). The special-token ids are
looked up in the tokenizer, never hard-coded. Tokenisation runs in the Rust
``tokenizers`` library over whole lists of sequences; no Python loop per token.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

from tokenizers import Tokenizer

from virnucpro.errors import ModelNotAvailableError

logger = logging.getLogger(__name__)

TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
_DEFAULT_SPECIAL = {"cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]"}
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
