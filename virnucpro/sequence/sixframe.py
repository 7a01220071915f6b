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
one byte buffer) at once. Every position of the buffer gets a codon index
(``25*b0 + 5*b1 + b2``, bases coded 0..4) in a few vectorised steps; one table
maps that index to flags (untranslatable, forward stop, reverse stop), so the
reverse strand never has to be built. The flagged positions are few; per
frame window, ``searchsorted`` over them (grouped by position modulo 3) counts
stops and dropped codons. The only per-frame Python work is cutting out the
kept frames (a strided slice of the codon indices through an amino-acid
table).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from Bio.Data import CodonTable

FRAME_SUFFIXES = ("F1", "F2", "F3", "R1", "R2", "R3")
"""Suffix appended to the chunk ID for frame numbers 1..6."""

_BASES = "ACGT"
_INVALID = 4  # base code of any character other than A, C, G, T (either case)
_STOP = ord("*")


def _build_tables() -> tuple[bytes, bytes, bytes, bytes, bytes]:
    """Byte translation tables built from the standard code (NCBI table 1, via Biopython).

    Returns:
        ``base_code``: byte -> 0..3 for A, C, G, T (either case), 4 otherwise;
        ``forward`` / ``reverse``: codon index ``25*b0 + 5*b1 + b2`` -> amino
        acid of the codon / of its reverse complement (0 when a base is not
        ACGT, so ``replace(b"\\0", b"")`` drops it);
        ``flags``: codon index -> bit 0 translatable (all bases ACGT), bit 1
        forward stop, bit 2 reverse stop;
        ``rc_upper``: byte -> complement of its upper case (A<->T, C<->G only).
    """
    table = CodonTable.unambiguous_dna_by_id[1]
    base_code = bytearray([_INVALID] * 256)
    for i, base in enumerate(_BASES):
        base_code[ord(base)] = base_code[ord(base.lower())] = i
    complement = {"A": "T", "T": "A", "C": "G", "G": "C"}

    def amino(codon: str) -> int:
        return _STOP if codon in table.stop_codons else ord(table.forward_table[codon])

    forward = bytearray(256)
    reverse = bytearray(256)
    flags = bytearray(256)
    for i, b0 in enumerate(_BASES):
        for j, b1 in enumerate(_BASES):
            for k, b2 in enumerate(_BASES):
                index = 25 * i + 5 * j + k
                forward[index] = amino(b0 + b1 + b2)
                reverse[index] = amino(complement[b2] + complement[b1] + complement[b0])
                flags[index] = _TRANSLATABLE | (_FORWARD_STOP if forward[index] == _STOP else 0) | (
                    _REVERSE_STOP if reverse[index] == _STOP else 0
                )
    rc_upper = bytes(
        ord(complement.get(chr(b).upper(), chr(b).upper())) if b < 128 else b for b in range(256)
    )
    return bytes(base_code), bytes(forward), bytes(reverse), bytes(flags), rc_upper


_TRANSLATABLE, _FORWARD_STOP, _REVERSE_STOP = 1, 2, 4
_PADDING_CODON = 124  # index of "NNN"-like codons: untranslatable
_BASE_CODE, _FORWARD_AA, _REVERSE_AA, _FLAGS, _RC_UPPER = _build_tables()


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
    n = s.size
    if n == 0 or len(buffer) < 3:
        return []
    # Codon index at every position p (0..n_pos-1), laid out class-major: position p
    # is at key(p) = (p % 3) * rows + p // 3, so the codons of one frame of one
    # chunk are one contiguous key range. Padding holds an untranslatable codon.
    code = np.frombuffer(buffer.translate(_BASE_CODE), dtype=np.uint8)
    n_pos = code.size - 2
    rows = -(-n_pos // 3)
    index = np.full(rows * 3, _PADDING_CODON, dtype=np.uint8)
    np.multiply(code[:-2], np.uint8(25), out=index[:n_pos])
    index[:n_pos] += code[1:-1] * np.uint8(5)
    index[:n_pos] += code[2:]
    by_class = index.reshape(rows, 3).T.tobytes()
    # bit 0: translatable, bit 1: forward stop, bit 2: reverse stop; plus one 0 sentinel.
    flags = np.frombuffer(by_class.translate(_FLAGS) + b"\x00", dtype=np.uint8)

    # Each chunk has exactly one forward and one reverse frame whose codons start in
    # residue class r (r = 0, 1, 2); in (class, chunk) order the key ranges ascend.
    cls = np.arange(3, dtype=np.int64)[:, None]
    last_start = e - 3  # last codon start inside the chunk
    f_frame = (cls - s) % 3
    f_first = s + f_frame
    f_final = f_first + 3 * ((last_start - f_first) // 3)
    r_frame = (last_start - cls) % 3
    r_final = last_start - r_frame  # the reverse frame's first codon, nearest the chunk end
    r_first = r_final - 3 * ((r_final - s) // 3)

    kept = np.zeros((n, 6), dtype=bool)
    complete = np.zeros((n, 6), dtype=bool)  # every codon translatable (none dropped)
    key_lo = np.zeros((n, 6), dtype=np.int64)
    key_hi = np.zeros((n, 6), dtype=np.int64)
    chunk = np.broadcast_to(np.arange(n), (3, n))
    for frame, first, final, stop_bit, column0 in (
        (f_frame, f_first, f_final, _FORWARD_STOP, 0),
        (r_frame, r_first, r_final, _REVERSE_STOP, 3),
    ):
        lo = cls * rows + first // 3
        hi = lo + (final - first) // 3  # lo - 1 when the frame has no codon
        bounds = np.empty(6 * n, dtype=np.int64)
        bounds[0::2] = lo.ravel()
        bounds[1::2] = hi.ravel() + 1
        np.clip(bounds, 0, flags.size - 1, out=bounds)
        any_bits = np.bitwise_or.reduceat(flags, bounds)[0::2].reshape(3, n)
        all_bits = np.bitwise_and.reduceat(flags, bounds)[0::2].reshape(3, n)
        column = column0 + frame
        kept[chunk, column] = (
            (final >= first) & ((any_bits & _TRANSLATABLE) != 0) & ((any_bits & stop_bit) == 0)
        )
        complete[chunk, column] = (all_bits & _TRANSLATABLE) != 0
        key_lo[chunk, column] = lo
        key_hi[chunk, column] = hi

    window_idx, frame_idx = np.nonzero(kept)
    if window_idx.size == 0:
        return []
    lo = key_lo[window_idx, frame_idx]
    hi = key_hi[window_idx, frame_idx] + 1
    reverse = frame_idx >= 3
    proteins = [
        by_class[a:b][::-1].translate(_REVERSE_AA) if r else by_class[a:b].translate(_FORWARD_AA)
        for a, b, r in zip(lo.tolist(), hi.tolist(), reverse.tolist())
    ]
    aa = hi - lo
    for i in np.flatnonzero(~complete[window_idx, frame_idx]).tolist():
        proteins[i] = proteins[i].replace(b"\x00", b"")  # drop untranslatable codons
        aa[i] = len(proteins[i])
    # Nucleotide slices (SPEC 3): forward chunk[f : f+1+3aa], reverse
    # revcomp(chunk)[r : r+1+3aa], both clipped at the chunk; in buffer coordinates.
    cs = s[window_idx]
    ce = e[window_idx]
    offset = frame_idx % 3
    nuc_lo = np.where(reverse, np.maximum(ce - 1 - offset - 3 * aa, cs), cs + offset)
    nuc_hi = np.where(reverse, ce - offset, np.minimum(cs + offset + 1 + 3 * aa, ce))
    nucleotides = [
        buffer[a:b].translate(_RC_UPPER)[::-1] if r else buffer[a:b].upper()
        for a, b, r in zip(nuc_lo.tolist(), nuc_hi.tolist(), reverse.tolist())
    ]
    return list(zip(window_idx.tolist(), frame_idx.tolist(), nucleotides, proteins))


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
