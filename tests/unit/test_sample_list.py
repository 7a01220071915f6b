"""The samples of a many-sample predict: names from file names or the TSV, and the refusals."""

from __future__ import annotations

import os

import pytest

from virnucpro.errors import InputError, UsageError
from virnucpro.pipeline.run.samples import Sample, sample_list


def _touch(path):
    path.write_text(">s\nACGT\n")
    return str(path)


def test_names_drop_sequence_and_compression_suffixes(tmp_path):
    paths = [_touch(tmp_path / name) for name in ("gut1.fa.gz", "gut2.fastq.xz", "soil.v2.fna", "x.FQ.BZ2")]
    assert [s.name for s in sample_list(paths, None)] == ["gut1", "gut2", "soil.v2", "x"]


def test_samples_file_names_its_samples_relative_to_itself(tmp_path):
    _touch(tmp_path / "a.fa")
    (tmp_path / "sub").mkdir()
    _touch(tmp_path / "sub" / "b.fq")
    tsv = tmp_path / "samples.tsv"
    tsv.write_text("# sample\tpath\nfirst\ta.fa\n\nsecond\tsub/b.fq\n")
    assert sample_list((), str(tsv)) == [Sample("first", str(tmp_path / "a.fa")),
                                         Sample("second", str(tmp_path / "sub" / "b.fq"))]


def test_clashing_names_missing_file_stream_twice_and_bad_lines_are_refused(tmp_path):
    (tmp_path / "d").mkdir()
    a, a2 = _touch(tmp_path / "a.fa"), _touch(tmp_path / "d" / "a.fa.gz")
    with pytest.raises(UsageError, match="two samples are named 'a'"):
        sample_list([a, a2], None)
    with pytest.raises(InputError, match="missing.fa: no such file"):
        sample_list([a, str(tmp_path / "missing.fa")], None)
    with pytest.raises(UsageError, match="cannot be given twice"):
        sample_list(["-", "-"], None)
    fifo = tmp_path / "pipe.fa"
    os.mkfifo(fifo)
    tsv = tmp_path / "s.tsv"
    tsv.write_text(f"p1\t{fifo}\np2\t{fifo}\n")
    with pytest.raises(UsageError, match="cannot be given twice"):
        sample_list((), str(tsv))
    tsv.write_text(f"only-a-name\nx\t{a}\n")
    with pytest.raises(UsageError, match="line 1: expected 'sample<TAB>path'"):
        sample_list((), str(tsv))
    for bad in ("../up", "run_summary.json", ".hidden"):
        tsv.write_text(f"{bad}\t{a}\n")
        with pytest.raises(UsageError, match="cannot be a sample name"):
            sample_list((), str(tsv))
    with pytest.raises(UsageError, match="no input given"):
        sample_list((), None)
