"""FASTQ reads give the result tables of the same reads as FASTA, byte for byte, whatever the
compression and also from standard input; a broken record is one error line (exit 3)."""

from __future__ import annotations

import bz2
import gzip
import lzma
from pathlib import Path

import pytest

from tests.conftest import TINY_REF, one_error_line, read_small_fasta, run_cli
from tests.integration.test_predict_fixture import fixture_args

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "example_contigs.fa"
#: Fixed batches: the default budget follows free memory, and another batch layout may change the last bit.
PINNED = ("--batch-tokens", "4096", "--shard-size", "1000")  # auto shard size cannot count a stream in advance
TABLES = ("prediction_results.txt", "prediction_results_highestscore.csv", "contig_summary.tsv",
          "chunk_scores.tsv", "viral_regions.tsv", "viral_regions.bed", "viral_regions.gff3")


def as_fastq(fasta: Path, target: Path, compress=bytes, wrap: int | None = None) -> Path:
    """The records of ``fasta`` as FASTQ (headers kept whole), sequence and qualities wrapped at ``wrap``."""
    text = fasta.read_text()
    headers = [line[1:] for line in text.splitlines() if line.startswith(">")]
    _ids, seqs = read_small_fasta(fasta)

    def lines(s: str) -> str:
        if wrap is None or not s:
            return s + "\n"
        return "".join(s[i:i + wrap] + "\n" for i in range(0, len(s), wrap))

    data = "".join(f"@{h}\n{lines(s)}+\n{lines('F' * len(s))}" for h, s in zip(headers, seqs))
    target.write_bytes(compress(data.encode()))
    return target


def tables(out: Path, names=TABLES) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in names}


def predict(args: list[str], input: bytes | None = None) -> None:
    result = run_cli(*args, input=input)
    assert result.returncode == 0, result.stderr.decode()


def test_fixture_models_fastq_equals_fasta(tmp_path: Path) -> None:
    fasta_out, fastq_out = tmp_path / "fa", tmp_path / "fq"
    predict(fixture_args(fasta_out, *PINNED))
    reads = as_fastq(TINY_REF / "contigs.fa", tmp_path / "contigs.fastq.gz", gzip.compress)
    args = fixture_args(fastq_out, *PINNED)
    args[1] = str(reads)
    predict(args)
    expected = tables(fasta_out, (*TABLES, "viral_contigs.fa"))
    assert expected["viral_contigs.fa"] and expected["viral_regions.tsv"].count(b"\n") > 1
    assert tables(fastq_out, (*TABLES, "viral_contigs.fa")) == expected


@pytest.fixture(scope="module")
def demo_reference(tmp_path_factory) -> Path:
    """The demo run of the example contigs as FASTA."""
    reference = tmp_path_factory.mktemp("demo-fasta") / "fa"
    predict(["predict", str(EXAMPLE), "-o", str(reference), "--models", "demo", "--no-dashboard", *PINNED])
    return reference


@pytest.mark.parametrize("how", ["bz2-wrapped", "xz", "stdin"])
def test_demo_fastq_equals_fasta(tmp_path: Path, demo_reference: Path, how: str) -> None:
    reference = demo_reference
    out = tmp_path / "fq"
    if how == "stdin":
        reads = as_fastq(EXAMPLE, tmp_path / "reads.fq")
        predict(["predict", "-", "-o", str(out), "--models", "demo", "--no-dashboard", *PINNED], input=reads.read_bytes())
    else:
        compress, wrap = (bz2.compress, 70) if how == "bz2-wrapped" else (lzma.compress, None)
        reads = as_fastq(EXAMPLE, tmp_path / "reads.dat", compress, wrap)
        predict(["predict", str(reads), "-o", str(out), "--models", "demo", "--no-dashboard", *PINNED])
    assert tables(out) == tables(reference)


def test_truncated_fastq_is_one_line_with_exit_3(tmp_path: Path) -> None:
    reads = as_fastq(EXAMPLE, tmp_path / "reads.fq.gz", gzip.compress)
    cut = tmp_path / "cut.fq"
    cut.write_bytes(gzip.decompress(reads.read_bytes())[:5000])
    result = run_cli("predict", str(cut), "-o", str(tmp_path / "out"), "--models", "demo", "--no-dashboard")
    assert result.returncode == 3
    line = one_error_line(result.stderr)
    assert str(cut) in line and "FASTQ record 2 is truncated" in line
