"""A slow, obviously-correct transcription of SPEC sections 2-3, used as the oracle in tests.

Written per codon with plain loops and a dict codon table, the way the
published tool reads; deliberately shares no code with ``virnucpro``.
"""

from __future__ import annotations

import math

_BASES = "TCAG"
_AMINO = "FFLLSSSSYY**CC*WLLLLPPPPHHQQRRRRIIIMTTTTNNKKSSRRVVVVAAAADDEEGGGG"
CODON_TABLE = {
    a + b + c: _AMINO[16 * i + 4 * j + k]
    for i, a in enumerate(_BASES)
    for j, b in enumerate(_BASES)
    for k, c in enumerate(_BASES)
}
_COMPLEMENT = {"A": "T", "T": "A", "C": "G", "G": "C"}


def spec_chunks(seq: str, chunk_length: int) -> list[str]:
    """SPEC 2, literally."""
    length = len(seq)
    n = math.ceil(length / chunk_length)
    overlap = n * chunk_length - length
    lo = overlap // n
    hi = lo + 1
    need = overlap - lo * (n - 1)
    shifts = ([hi] * need + [lo] * max(0, n - 1 - need) + [0])[:n]
    chunks = []
    for k in range(n):
        start = k * chunk_length - sum(shifts[:k])
        chunks.append(seq[start : start + chunk_length])
    return chunks


def spec_revcomp(seq: str) -> str:
    out = []
    for base in reversed(seq):
        out.append(_COMPLEMENT.get(base, base))
    return "".join(out)


def spec_translate(seq: str) -> str:
    protein = ""
    for i in range(0, len(seq) - 2, 3):
        codon = seq[i : i + 3]
        if codon in CODON_TABLE:
            protein += CODON_TABLE[codon]
    return protein


def spec_kept_frames(chunk: str) -> list[tuple[str, str, str]]:
    """(suffix, nucleotide, protein) of the kept frames of one chunk (SPEC 3)."""
    seq = chunk.upper()
    rc = spec_revcomp(seq)
    out = []
    for num in range(1, 7):
        if num <= 3:
            protein = spec_translate(seq[num - 1 :])
        else:
            protein = spec_translate(rc[num - 4 :])
        if protein and "*" not in protein:
            aa = len(protein)
            if num <= 3:
                nucleotide = seq[num - 1 : num + 3 * aa]
                suffix = f"F{num}"
            else:
                nucleotide = rc[num - 4 : num - 3 + 3 * aa]
                suffix = f"R{num - 3}"
            out.append((suffix, nucleotide, protein))
    return out


def spec_translate_records(records: list[tuple[str, str]], chunk_length: int):
    """The three outputs for ``(id, sequence)`` records: lists of (id, seq) pairs."""
    chunked, nucleotide, protein = [], [], []
    for record_id, seq in records:
        if not seq:
            continue
        for k, chunk in enumerate(spec_chunks(seq, chunk_length), start=1):
            chunk_id = f"{record_id}_chunk_{k}"
            chunked.append((chunk_id, chunk))
            for suffix, nuc, prot in spec_kept_frames(chunk):
                nucleotide.append((chunk_id + suffix, nuc))
                protein.append((chunk_id + suffix, prot))
    return chunked, nucleotide, protein
