"""GenBank inputs and the published training-data filter (``train --genbank-cds``).

The published data preparation kept, for training, only chunks without
ambiguous bases and only frames whose translation is part of an annotated
protein (a GenBank CDS) of the genome the chunk came from. Here a GenBank
file is turned into (a) a FASTA file the predict stages read as usual and (b)
per record, the CDS proteins and the chunks that hold a base other than
``ACGT``; :meth:`CdsFilter.keeps` then decides per frame.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from virnucpro.errors import InputError
from virnucpro.io.fasta import FastaWriter
from virnucpro.pipeline.checkpoint import atomic_write
from virnucpro.sequence import ids
from virnucpro.sequence.chunking import chunk_sequence

logger = logging.getLogger(__name__)

_UNAMBIGUOUS = frozenset("ACGT")


@dataclass
class CdsFilter:
    """What decides which frames of a GenBank input are kept for training.

    Attributes:
        proteins: per record ID, its CDS translations joined with ``|`` (a frame is kept when
            its protein is a substring of this text and holds no ``|``, i.e. of one protein).
        ambiguous_chunks: chunk IDs holding a base other than A, C, G, T.
    """

    proteins: dict[str, str] = field(default_factory=dict)
    ambiguous_chunks: set[str] = field(default_factory=set)

    def keeps(self, frame_id: str, protein: str) -> bool:
        """True when the frame's chunk is unambiguous and its protein is part of an annotated CDS."""
        chunk = ids.chunk_of_frame(frame_id)
        if chunk in self.ambiguous_chunks:
            return False
        return protein in self.proteins.get(ids.record_of_chunk(chunk), "")


def _cds_proteins(record: object) -> list[str]:
    """The CDS translations of a Biopython record (the ``translation`` qualifier, else translated)."""
    proteins = []
    for feature in getattr(record, "features", []):
        if feature.type != "CDS":
            continue
        given = feature.qualifiers.get("translation")
        if given:
            proteins.append(str(given[0]).replace(" ", "").upper())
            continue
        table = int(feature.qualifiers.get("transl_table", ["1"])[0])
        try:
            protein = str(feature.extract(record.seq).translate(table=table, to_stop=True))  # type: ignore[attr-defined]
        except Exception as exc:  # noqa: BLE001 - Biopython raises many kinds here; the CDS is just skipped
            logger.debug("CDS without a translation skipped: %s", exc)
            continue
        if protein:
            proteins.append(protein.upper())
    return proteins


def genbank_to_fasta(path: Path, fasta_out: Path, chunk_length: int) -> CdsFilter:
    """Write the sequences of a GenBank file as FASTA and collect what the CDS filter needs.

    Raises:
        InputError: the file is not GenBank, holds no record, or no record has a CDS.
    """
    from Bio import SeqIO

    cds = CdsFilter()
    records = 0

    def write(handle: object) -> None:
        nonlocal records
        writer = FastaWriter(handle)  # type: ignore[arg-type]
        try:
            for record in SeqIO.parse(str(path), "genbank"):
                sequence = str(record.seq)
                records += 1
                writer.write(record.id, sequence)
                cds.proteins[record.id] = "|".join(_cds_proteins(record))
                for k, chunk in enumerate(chunk_sequence(sequence.upper(), chunk_length), start=1):
                    if not _UNAMBIGUOUS.issuperset(chunk):
                        cds.ambiguous_chunks.add(ids.chunk_id(record.id, k))
        except (ValueError, OSError) as exc:
            raise InputError(f"{path}: not a readable GenBank file ({exc})") from None

    atomic_write(fasta_out, write)
    if records == 0:
        raise InputError(f"{path}: no GenBank records (--genbank-cds expects GenBank files)")
    if not any(cds.proteins.values()):
        raise InputError(f"{path}: no CDS with a translation in {records} GenBank record(s); "
                         "--genbank-cds keeps only frames of annotated proteins")
    return cds


def kept_by_cds(cds: CdsFilter, frame_ids: Sequence[str], proteins: Sequence[str]) -> list[bool]:
    """:meth:`CdsFilter.keeps` for each frame."""
    return [cds.keeps(fid, protein) for fid, protein in zip(frame_ids, proteins)]
