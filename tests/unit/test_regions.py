"""Viral regions from chunk scores: the rule, its edge cases and invariants, and the three files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from virnucpro.pipeline.outputs import RunPaths
from virnucpro.pipeline.report import per_sequence
from virnucpro.pipeline.report.regions import (
    REGIONS_HEADER,
    ChunkScore,
    region_spans,
    sequence_regions,
    write_regions,
)
from virnucpro.sequence.chunking import chunk_bounds


def chunks_of(scores: list[float | None], length: int | None = None, chunk_length: int = 500) -> list[ChunkScore]:
    """Chunks of a sequence with these scores, bounds as the published chunking makes them."""
    length = length or chunk_length * len(scores)
    bounds = chunk_bounds(length, chunk_length)
    assert len(bounds) == len(scores)
    return [ChunkScore(s + 1, e, None if v is None else np.float32(v)) for (s, e), v in zip(bounds, scores)]


V, N = True, False


@pytest.mark.parametrize(("virus", "gap", "min_chunks", "spans"), [
    ([V, V, N, V, V], 1, 2, [(0, 4)]),         # one gap chunk bridged
    ([V, V, N, N, V, V], 1, 2, [(0, 1), (4, 5)]),  # two are not
    ([V, V, N, N, V, V], 2, 2, [(0, 5)]),
    ([V, N, V], 0, 2, []),                     # no bridging: two single chunks
    ([V, N, V], 1, 2, [(0, 2)]),               # bridged: two virus chunks
    ([N, V, N, N, N], 1, 2, []),               # a lone virus chunk in a long sequence
    ([N, V, N, N, N], 1, 1, [(1, 1)]),
    ([V], 1, 2, [(0, 0)]),                     # shorter than min_chunks, all virus: whole sequence
    ([V, V], 1, 3, [(0, 1)]),
    ([V, N], 1, 3, []),                        # shorter, not all virus
    ([N, V, V, N], 1, 2, [(1, 2)]),            # regions start and end with virus chunks
    ([], 1, 2, []),
])
def test_region_rule(virus, gap, min_chunks, spans) -> None:
    assert region_spans(virus, gap, min_chunks) == spans


def test_prophage_in_a_bacterial_contig_coordinates_and_scores() -> None:
    # 7 chunks over 3300 bp: chunks overlap as the published chunking makes them.
    scores = [0.1, 0.2, 0.9, 0.45, 0.8, 0.7, None]
    chunks = chunks_of(scores, length=3300)
    [region] = sequence_regions("ctg", chunks, 0.5, gap=1, min_chunks=2)
    assert (region.start, region.end) == (chunks[2].start, chunks[5].end)
    assert (region.chunks, region.virus_chunks, region.region_id) == (4, 3, "ctg_region_1")
    assert region.mean_score == np.float32((0.9 + 0.45 + 0.8 + 0.7) / 4)
    assert region.max_score == np.float32(0.9)
    # --min-score moves the virus chunks: at 0.85 only one is left, too few.
    assert sequence_regions("ctg", chunks, 0.85, gap=1, min_chunks=2) == []


def test_no_frame_chunks_are_not_virus_but_can_be_bridged() -> None:
    chunks = chunks_of([0.9, None, 0.9])
    [region] = sequence_regions("s", chunks, 0.5, gap=1, min_chunks=2)
    assert (region.chunks, region.virus_chunks, region.mean_score) == (3, 2, np.float32(0.9))
    assert sequence_regions("s", chunks_of([None]), 0.5, 1, 2) == []


def test_threshold_is_compared_in_float32() -> None:
    chunk = chunks_of([0.55])
    assert len(sequence_regions("s", chunk, 0.55, 1, 2)) == 1  # float32(0.55) >= float32(0.55)


virus_lists = st.lists(st.booleans(), max_size=40)


@settings(max_examples=300, deadline=None)
@given(virus=virus_lists, gap=st.integers(0, 5), min_chunks=st.integers(1, 6))
def test_regions_never_overlap_lie_inside_and_start_and_end_with_virus(virus, gap, min_chunks) -> None:
    spans = region_spans(virus, gap, min_chunks)
    for first, last in spans:
        assert 0 <= first <= last < len(virus)
        assert virus[first] and virus[last]
        assert sum(virus[first:last + 1]) >= min(min_chunks, len(virus))
        run = 0
        for hit in virus[first:last + 1]:  # no more than ``gap`` non-virus chunks in a row inside
            run = 0 if hit else run + 1
            assert run <= gap
    for (_, a_last), (b_first, _) in zip(spans, spans[1:]):
        assert b_first - a_last - 1 > gap  # else they would have been merged
    if min_chunks == 1:  # every virus chunk is in a region
        assert sum(last - first + 1 for first, last in spans) >= sum(virus) and all(
            any(f <= k <= e for f, e in spans) for k, hit in enumerate(virus) if hit)


@settings(max_examples=300, deadline=None)
@given(virus=virus_lists, gap=st.integers(0, 5), min_chunks=st.integers(1, 6))
def test_merging_is_monotone_in_gap(virus, gap, min_chunks) -> None:
    """Each region at ``gap`` lies inside a region at ``gap + 1``."""
    wider = region_spans(virus, gap + 1, min_chunks)
    for first, last in region_spans(virus, gap, min_chunks):
        assert any(f <= first and last <= e for f, e in wider)


def write_chunk_scores(paths: RunPaths, sequences: dict[str, tuple[int, list[float | None]]]) -> None:
    with open(paths.chunk_scores, "w", encoding="utf-8") as out:
        out.write(per_sequence.CHUNK_SCORES_HEADER)
        for seq_id, (length, scores) in sequences.items():
            for k, chunk in enumerate(chunks_of(scores, length), start=1):
                score = "NA" if chunk.score is None else str(chunk.score)
                is_virus = "NA" if chunk.score is None else str(chunk.score >= 0.5)
                out.write(f"{seq_id}\t{seq_id}_chunk_{k}\t{chunk.start}\t{chunk.end}\t1\t{score}\t{score}\t"
                          f"{is_virus}\n")


def read_rows(path: Path) -> list[list[str]]:
    return [line.split("\t") for line in path.read_text().splitlines()]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 4000), st.data()), min_size=1, max_size=6))
def test_files_agree_and_gff3_is_valid(tmp_path_factory, specs) -> None:
    paths = RunPaths(tmp_path_factory.mktemp("regions"))
    sequences = {}
    for n, (length, data) in enumerate(specs):
        count = len(chunk_bounds(length, 500))
        scores = data.draw(st.lists(st.one_of(st.none(), st.floats(0, 1, width=32)), min_size=count,
                                    max_size=count))
        sequences[f"seq {n};x" if n == 1 else f"seq{n}"] = (length, scores)
    # IDs have no whitespace in real runs; "seq 1;x" exercises GFF3 escaping only.
    sequences = {k.replace(" ", "_"): v for k, v in sequences.items()}
    write_chunk_scores(paths, sequences)
    count = write_regions(paths, 0.5, 1, 2)

    tsv = read_rows(paths.regions_tsv)
    assert "\t".join(tsv[0]) + "\n" == REGIONS_HEADER and len(tsv) - 1 == count
    bed = read_rows(paths.regions_bed)
    assert len(bed) == count
    for t, b in zip(tsv[1:], bed):  # BED = TSV shifted to 0-based half-open
        seq_id, region_id, start, end, length = t[0], t[1], int(t[2]), int(t[3]), int(t[4])
        assert b[:4] == [seq_id, str(start - 1), str(end), region_id] and b[5] == "."
        assert 0 <= int(b[4]) <= 1000 and end - start + 1 == length
        assert 1 <= start <= end <= sequences[seq_id][0]

    gff = paths.regions_gff.read_text().splitlines()
    assert gff[0] == "##gff-version 3"
    declared: dict[str, int] = {}
    features = []
    for line in gff[1:]:
        if line.startswith("##sequence-region "):
            _, seqid, one, length = line.split(" ")
            assert one == "1" and seqid not in declared
            declared[seqid] = int(length)
            continue
        cols = line.split("\t")
        assert len(cols) == 9 and not line.startswith("#")
        seqid, _source, kind, start, end, score, strand, phase, attributes = cols
        assert seqid in declared and 1 <= int(start) <= int(end) <= declared[seqid]
        assert (kind, strand, phase) == ("region", ".", ".") and 0 <= float(score) <= 1
        attrs = dict(pair.split("=", 1) for pair in attributes.split(";"))
        assert attrs["ID"] and not any(c in attrs["ID"] for c in " \t;=,")
        features.append((start, end))
    assert features == [(t[2], t[3]) for t in tsv[1:]]
    assert set(declared) == {t[0].replace(";", "%3B") for t in tsv[1:]}
