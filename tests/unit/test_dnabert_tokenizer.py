"""The DNABERT-S tokenizer wrapper: [CLS] tokens [SEP], ids read from the tokenizer."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from tokenizers import Tokenizer

from virnucpro.errors import ModelNotAvailableError
from virnucpro.models.dnabert_tokenizer import DnabertTokenizer

SEQS = ["ACGTTGCAAGGCTTAACG", "A", "", "TTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTT", "NNNACGTNNRY"]


@pytest.fixture()
def model_dir(tiny_ref: Path) -> Path:
    return tiny_ref / "models" / "dnabert_tiny"


def _copy_with_tokenizer(model_dir: Path, dest: Path, edit) -> Path:
    """A copy of the tokenizer files with ``edit(tokenizer_json_dict)`` applied."""
    dest.mkdir()
    shutil.copy(model_dir / "tokenizer_config.json", dest)
    raw = json.loads((model_dir / "tokenizer.json").read_text())
    edit(raw)
    (dest / "tokenizer.json").write_text(json.dumps(raw))
    return dest


def test_special_ids_come_from_the_tokenizer(model_dir: Path) -> None:
    raw = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tok = DnabertTokenizer.from_dir(model_dir)
    expected = tuple(raw.token_to_id(t) for t in ("[CLS]", "[SEP]", "[PAD]"))
    assert (tok.cls_id, tok.sep_id, tok.pad_id) == expected


def test_encode_wraps_in_cls_sep_like_the_published_tokenizer(model_dir: Path) -> None:
    raw = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tok = DnabertTokenizer.from_dir(model_dir)
    encoded = tok.encode(SEQS)
    assert encoded == [raw.encode(s).ids for s in SEQS]
    for ids in encoded:
        assert ids[0] == tok.cls_id and ids[-1] == tok.sep_id
        assert tok.cls_id not in ids[1:-1] and tok.sep_id not in ids[1:-1]
    assert encoded[2] == [tok.cls_id, tok.sep_id]  # empty string


def test_lower_case_is_upper_cased(model_dir: Path) -> None:
    tok = DnabertTokenizer.from_dir(model_dir)
    assert tok.encode([s.lower() for s in SEQS]) == tok.encode(SEQS)


def test_missing_post_processor_adds_cls_sep_ourselves(model_dir: Path, tmp_path: Path) -> None:
    bare = _copy_with_tokenizer(model_dir, tmp_path / "bare", lambda raw: raw.update(post_processor=None))
    assert DnabertTokenizer.from_dir(bare).encode(SEQS) == DnabertTokenizer.from_dir(model_dir).encode(SEQS)


def test_wrong_post_processor_is_refused(model_dir: Path, tmp_path: Path) -> None:
    def only_sequence(raw: dict) -> None:
        raw["post_processor"]["single"] = [{"Sequence": {"id": "A", "type_id": 0}}]

    bad = _copy_with_tokenizer(model_dir, tmp_path / "bad", only_sequence)
    with pytest.raises(ModelNotAvailableError, match=r"\[CLS\] tokens \[SEP\]"):
        DnabertTokenizer.from_dir(bad)


def test_missing_or_corrupt_tokenizer(tmp_path: Path) -> None:
    with pytest.raises(ModelNotAvailableError, match="tokenizer.json does not exist"):
        DnabertTokenizer.from_dir(tmp_path)
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(ModelNotAvailableError, match="unreadable"):
        DnabertTokenizer.from_dir(tmp_path)


def test_special_token_names_from_tokenizer_config(model_dir: Path, tmp_path: Path) -> None:
    dest = _copy_with_tokenizer(model_dir, tmp_path / "renamed", lambda raw: None)
    (dest / "tokenizer_config.json").write_text(json.dumps({"pad_token": "[MASK]"}))
    tok = DnabertTokenizer.from_dir(dest)
    assert tok.pad_id == Tokenizer.from_file(str(dest / "tokenizer.json")).token_to_id("[MASK]")
    (dest / "tokenizer_config.json").write_text(json.dumps({"cls_token": "<no such token>"}))
    with pytest.raises(ModelNotAvailableError, match="has no <no such token> token"):
        DnabertTokenizer.from_dir(dest)


def _malloc_in_use() -> int | None:
    """Bytes this process has allocated with glibc's malloc (``mallinfo2``), None elsewhere."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    if libc is None or not hasattr(libc, "mallinfo2"):
        return None

    class MallInfo2(ctypes.Structure):
        _fields_ = [(field, ctypes.c_size_t) for field in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
            "keepcost")]

    libc.mallinfo2.restype = MallInfo2
    return int(libc.mallinfo2().uordblks)


def test_tokenising_new_frames_holds_no_memory(model_dir: Path) -> None:
    """The BPE word cache is off: a worker tokenises every distinct frame of a run once, and
    with the library's default cache each one stayed in memory (issue 30 follow-up: ~95 MiB
    per worker with the demo tokenizer). Memory in use must not grow with frames tokenised."""
    import random

    if _malloc_in_use() is None:
        pytest.skip("needs glibc's mallinfo2 to read the memory in use")
    tok = DnabertTokenizer.from_dir(model_dir)
    rng = random.Random(0)

    def frames(n: int) -> list[str]:
        return ["".join(rng.choices("ACGT", k=150)) for _ in range(n)]

    tok.encode(frames(1000))  # the library's own one-time allocations
    before = _malloc_in_use()
    for _ in range(4):
        tok.encode(frames(1000))
    grown = _malloc_in_use() - before  # type: ignore[operator]
    assert grown < 2 * 2**20, f"{grown / 2**20:.1f} MiB held after tokenising 4,000 new frames"
