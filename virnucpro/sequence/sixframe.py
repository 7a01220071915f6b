"""Six-frame translation and frame selection exactly as the published VirNucPro does (SPEC 3).

Rules, quirks included:

* The chunk is upper-cased; codons are read over ``ACGT`` with the standard
  genetic code (NCBI table 1), stops give ``*``.
* Quirk: a codon with any other character (``N``, IUPAC codes, ``U``,
  anything) is dropped, not translated to ``X``.
* Reverse frames read the reverse complement, where only ``A<->T`` and
  ``C<->G`` are complemented and every other character stays as it is.
* A frame is kept when its protein is non-empty and has no ``*``. Its
  nucleotide sequence is ``chunk[num-1 : num + 3*aa]`` (forward, ``num`` 1..3)
  or ``revcomp(chunk)[num-4 : num-3 + 3*aa]`` (reverse, ``num`` 4..6), clipped
  at the chunk end. Quirk: that is one base past the last codon, and it no
  longer lines up with the codons when some were dropped. Kept as published.
* Order: F1, F2, F3, R1, R2, R3.

Implementation: :func:`translate_windows` works on many chunks (windows of
one byte buffer) at once. Every codon of the buffer is translated with one
numpy table lookup in both directions (a codon's reverse-complement amino acid
comes from a second table over the same codon index), and per-frame counts of
translatable codons and stops come from residue-class prefix sums, so the only
per-frame Python work is cutting out the frames that are kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from Bio.Data import CodonTable

FRAME_SUFFIXES = ("F1", "F2", "F3", "R1", "R2", "R3")
"""Suffix appended to the chunk ID for frame numbers 1..6."""

_BASES = "ACGT"
_INVALID = 4  # base code of any character other than A, C, G, T (either case)
_STOP = ord("*")


def _build_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, bytes]:
    """Lookup tables from the standard code (NCBI table 1, from Biopython).

    Returns:
        ``base_code`` (256 -> 0..4), ``forward`` and ``reverse`` (codon index
        ``25*b0 + 5*b1 + b2`` -> amino-acid byte, 0 when the codon has an
        invalid base; ``reverse`` gives the amino acid of the codon's reverse
        complement) and the bytes translation table for "upper-case, then
        complement A<->T and C<->G".
    """
    table = CodonTable.unambiguous_dna_by_id[1]
    base_code = np.full(256, _INVALID, dtype=np.uint8)
    for i, base in enumerate(_BASES):
        base_code[ord(base)] = base_code[ord(base.lower())] = i
    complement = {"A": "T", "T": "A", "C": "G", "G": "C"}

    def amino(codon: str) -> int:
        return _STOP if codon in table.stop_codons else ord(table.forward_table[codon])

    forward = np.zeros(125, dtype=np.uint8)
    reverse = np.zeros(125, dtype=np.uint8)
    for i, b0 in enumerate(_BASES):
        for j, b1 in enumerate(_BASES):
            for k, b2 in enumerate(_BASES):
                index = 25 * i + 5 * j + k
                forward[index] = amino(b0 + b1 + b2)
                reverse[index] = amino(complement[b2] + complement[b1] + complement[b0])
    rc_upper = bytes(
        ord(complement.get(chr(b).upper(), chr(b).upper())) if b < 128 else b for b in range(256)
    )
    return base_code, forward, reverse, rc_upper


_BASE_CODE, _FORWARD_AA, _REVERSE_AA, _RC_UPPER = _build_tables()
_FRAME_OFFSETS = np.arange(3, dtype=np.int64)


@dataclass(frozen=True, slots=True)
class KeptFrame:
    """A frame that passed selection.

    Attributes:
        suffix: ``F1``..``F3`` or ``R1``..``R3``, appended to the chunk ID.
        nucleotide: upper-case nucleotide slice (SPEC 3; may be misaligned).
        protein: the translation, without stops and without dropped codons.
    """

    suffix: str
    nucleotide: str
    protein: str

    @property
    def number(self) -> int:
        """Frame number 1..6 (1-3 forward, 4-6 reverse)."""
        return FRAME_SUFFIXES.index(self.suffix) + 1


def reverse_complement(seq: str) -> str:
    """Upper-case reverse complement as the published tool makes it (other characters unchanged)."""
    return seq.encode("ascii").translate(_RC_UPPER)[::-1].decode("ascii")


def translate_windows(
    buffer: bytes, starts: Sequence[int] | np.ndarray, ends: Sequence[int] | np.ndarray
) -> list[tuple[int, int, bytes, bytes]]:
    """Select and cut out the kept frames of many chunks at once.

    Each chunk is the window ``buffer[starts[i]:ends[i]]``; windows may
    overlap and may come from different records (codons never cross a window
    edge). Case is ignored for translation.

    Args:
        buffer: ASCII sequence bytes (any case).
        starts: window starts.
        ends: window ends (exclusive), ``starts[i] <= ends[i] <= len(buffer)``.

    Returns:
        ``(window_index, frame_index, nucleotide, protein)`` for every kept
        frame, ordered by window then frame (0..5 = F1..R3); ``nucleotide`` is
        upper case.
    """
    s = np.asarray(starts, dtype=np.int64)
    e = np.asarray(ends, dtype=np.int64)
    if s.size == 0 or len(buffer) < 3:
        return []
    code = _BASE_CODE[np.frombuffer(buffer, dtype=np.uint8)]
    index = code[:-2] * np.uint8(25)
    index += code[1:-1] * np.uint8(5)
    index += code[2:]
    forward_aa = _FORWARD_AA[index]
    reverse_aa = _REVERSE_AA[index]
    n_codons = index.size  # codon start positions 0 .. n_codons-1

    # prefix[p + 3, q] = sum over codon positions p' <= p with p' == p (mod 3) of
    # quantity q (0: translatable, 1: forward stop, 2: reverse stop); rows 0..2 are 0.
    rows = -(-n_codons // 3) + 1
    prefix = np.zeros((rows * 3, 3), dtype=np.int32)
    prefix[3 : 3 + n_codons, 0] = forward_aa != 0
    prefix[3 : 3 + n_codons, 1] = forward_aa == _STOP
    prefix[3 : 3 + n_codons, 2] = reverse_aa == _STOP
    np.cumsum(prefix.reshape(rows, 3, 3), axis=0, out=prefix.reshape(rows, 3, 3))

    # First and last codon start of each frame, in buffer coordinates.
    last = (e - 3)[:, None]
    f_first = s[:, None] + _FRAME_OFFSETS
    f_has = last >= f_first
    f_last = f_first + 3 * ((last - f_first) // 3)
    r_last = last - _FRAME_OFFSETS  # codon nearest the chunk end comes first
    r_has = r_last >= s[:, None]
    r_first = r_last - 3 * ((r_last - s[:, None]) // 3)
    has = np.concatenate([f_has, r_has], axis=1)
    first = np.where(has, np.concatenate([f_first, r_first], axis=1), 0)
    final = np.where(has, np.concatenate([f_last, r_last], axis=1), 0)
    sums = prefix[final + 3] - prefix[first]
    translatable = sums[:, :, 0]
    stops = np.concatenate([sums[:, :3, 1], sums[:, 3:, 2]], axis=1)
    kept = has & (translatable > 0) & (stops == 0)

    window_idx, frame_idx = np.nonzero(kept)
    if window_idx.size == 0:
        return []
    forward_bytes = forward_aa.tobytes()
    reverse_bytes = reverse_aa.tobytes()
    out: list[tuple[int, int, bytes, bytes]] = []
    for w, f, lo, hi, aa, cs, ce in zip(
        window_idx.tolist(),
        frame_idx.tolist(),
        first[window_idx, frame_idx].tolist(),
        final[window_idx, frame_idx].tolist(),
        translatable[window_idx, frame_idx].tolist(),
        s[window_idx].tolist(),
        e[window_idx].tolist(),
    ):
        complete = aa == (hi - lo) // 3 + 1
        if f < 3:
            protein = forward_bytes[lo : hi + 1 : 3]
            nucleotide = buffer[cs + f : min(cs + f + 1 + 3 * aa, ce)].upper()
        else:
            r = f - 3
            protein = reverse_bytes[lo : hi + 1 : 3][::-1]
            nucleotide = buffer[max(ce - 1 - r - 3 * aa, cs) : ce - r].translate(_RC_UPPER)[::-1]
        if not complete:
            protein = protein.replace(b"\x00", b"")
        out.append((w, f, nucleotide, protein))
    return out


def kept_frames(chunk: str) -> list[KeptFrame]:
    """Kept frames of one chunk, in the order F1, F2, F3, R1, R2, R3.

    Args:
        chunk: the chunk sequence, ASCII, any case.

    Raises:
        UnicodeEncodeError: ``chunk`` holds non-ASCII characters.
    """
    data = chunk.encode("ascii")
    return [
        KeptFrame(FRAME_SUFFIXES[f], nucleotide.decode("ascii"), protein.decode("ascii"))
        for _, f, nucleotide, protein in translate_windows(data, [0], [len(data)])
    ]
