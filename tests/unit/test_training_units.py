"""Metrics against brute-force definitions; the GenBank CDS frame filter on a record built here."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from virnucpro.training.metrics import binary_metrics, roc_auc


def test_roc_auc_counts_pairs_with_ties_as_half():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 200)
    scores = np.round(rng.random(200), 1)  # many ties
    pos, neg = scores[labels == 1], scores[labels == 0]
    brute = sum((p > n) + 0.5 * (p == n) for p, n in itertools.product(pos, neg)) / (len(pos) * len(neg))
    assert roc_auc(labels, scores) == pytest.approx(brute, abs=1e-12)
    assert roc_auc(np.ones(5), np.arange(5.0)) is None


def test_binary_metrics_by_hand():
    labels = np.array([1, 1, 1, 0, 0, 0, 0])
    scores = np.array([0.9, 0.6, 0.2, 0.7, 0.1, 0.3, 0.5])
    m = binary_metrics(labels, scores)  # calls: 1 1 0 1 0 0 1
    assert m["confusion_matrix"] == [[2, 2], [1, 2]]
    assert m["accuracy"] == pytest.approx(4 / 7)
    assert m["precision"] == pytest.approx(0.5) and m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    none_called = binary_metrics(labels, scores, predicted=np.zeros(7))
    assert none_called["precision"] is None and none_called["recall"] == 0.0


def test_genbank_cds_filter_keeps_annotated_unambiguous_frames(tmp_path):
    from Bio.Seq import Seq
    from Bio.SeqFeature import FeatureLocation, SeqFeature
    from Bio.SeqIO import write
    from Bio.SeqRecord import SeqRecord

    from virnucpro.sequence.sixframe import kept_frames
    from virnucpro.training.genbank import genbank_to_fasta

    cds = "ATG" + "GCTAAAGAA" * 10 + "TAA"  # M(AKE)x10 stop
    seq = cds + "CCCNNNCCC" * 4
    record = SeqRecord(Seq(seq), id="g1", name="g1", annotations={"molecule_type": "DNA"})
    record.features.append(SeqFeature(FeatureLocation(0, len(cds)), type="CDS"))
    path = tmp_path / "g.gb"
    write([record], path, "genbank")
    filt = genbank_to_fasta(path, tmp_path / "g.fa", chunk_length=30)
    assert (tmp_path / "g.fa").read_text().splitlines()[0] == ">g1"
    assert filt.proteins["g1"].startswith("MAKEAKE")
    first = kept_frames(seq[:30])
    kept = {f.suffix for f in first if filt.keeps("g1_chunk_1" + f.suffix, f.protein)}
    assert kept == {"F1"}  # the CDS frame only
    last_chunk = max(int(c.rsplit("_", 1)[1]) for c in filt.ambiguous_chunks)
    assert not filt.keeps(f"g1_chunk_{last_chunk}F1", "")
    (tmp_path / "x.gb").write_text("not genbank\n")
    from virnucpro.errors import InputError

    with pytest.raises(InputError, match="x.gb"):
        genbank_to_fasta(tmp_path / "x.gb", tmp_path / "x.fa", 30)
