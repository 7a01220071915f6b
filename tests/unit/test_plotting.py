"""Reading a run back for `virnucpro plot` and drawing it (hand-written tables, real matplotlib)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from virnucpro.errors import InputError
from virnucpro.pipeline.report import plot as plotting
from virnucpro.pipeline.report.per_sequence import CHUNK_SCORES_HEADER, CONTIG_SUMMARY_HEADER
from virnucpro.pipeline.report.per_sequence import EARLIER_CONTIG_SUMMARY_HEADER as OLD_SUMMARY_HEADER
from virnucpro.sequence.chunking import chunk_bounds

HUGE = 50_000_000
#: Scored islands of the 50 Mbp record: chunk numbers -> (score, is_virus); every other chunk has no frame.
HUGE_ISLANDS = {1000: (0.8, True), 1001: (0.7, True), 40_000: (0.3, False), 99_000: (0.9, True)}

CONTIGS = [
    # id, length, chunks, with_frames, virus, max, status, virus_score, fraction, call
    ("long", 1200, 3, 2, 1, "0.7", "scored", "0.6", "0.5", "virus"),
    ("short", 300, 1, 1, 1, "0.9", "scored", "0.9", "1", "virus"),
    ("tie_a", 100, 1, 1, 0, "0.4", "scored", "0.4", "0", "not_virus"),
    ("noframe", 250, 1, 0, 0, "NA", "no_kept_frame", "NA", "NA", "no_call"),
    ("tie_b", 100, 1, 1, 0, "0.4", "scored", "0.4", "0", "not_virus"),
    ("empty", 0, 0, 0, 0, "NA", "empty_skipped", "NA", "NA", "no_call"),
    ("tiny", 90, 1, 0, 0, "NA", "too_short", "NA", "NA", "no_call"),
    ("huge", HUGE, 100_000, 4, 3, "0.9", "scored", "0.675", "0.75", "virus"),
]
CHUNK_SCORES = {  # id -> {chunk number: (score, is_virus)}
    "long": {1: (0.55, False), 3: (0.65, True)},
    "short": {1: (0.9, True)},
    "tie_a": {1: (0.4, False)},
    "noframe": {},
    "tie_b": {1: (0.4, False)},
    "huge": HUGE_ISLANDS,
}


def write_run(root: Path, min_score: float = 0.5) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "contig_summary.tsv").write_text(
        CONTIG_SUMMARY_HEADER + "".join("\t".join(map(str, row)) + "\n" for row in CONTIGS))
    lines = [CHUNK_SCORES_HEADER]
    for seq_id, length, *_ in CONTIGS:
        if seq_id not in CHUNK_SCORES:
            continue
        for k, (start, end) in enumerate(chunk_bounds(length, 500), start=1):
            score = CHUNK_SCORES[seq_id].get(k)
            tail = "0\tNA\tNA\tNA" if score is None else f"1\t{score[0]}\t{score[0]}\t{score[1]}"
            lines.append(f"{seq_id}\t{seq_id}_chunk_{k}\t{start + 1}\t{end}\t{tail}\n")
    (root / "chunk_scores.tsv").write_text("".join(lines))
    (root / "run_summary.json").write_text(json.dumps({"chunk_length": 500, "calls": {"min_score": min_score}}))
    return root


@pytest.fixture()
def run_dir(tmp_path: Path) -> Path:
    return write_run(tmp_path / "run")


def test_top_sequences_by_virus_score_ties_in_input_order(run_dir):
    _, tracks = plotting.load_tracks(run_dir, top=3)
    assert [t.sequence_id for t in tracks] == ["short", "huge", "long"]
    _, tracks = plotting.load_tracks(run_dir, top=100)
    assert [t.sequence_id for t in tracks] == ["short", "huge", "long", "tie_a", "tie_b"]  # no NA among the top


def test_chunks_are_placed_in_bp_with_chunk_score_call_and_no_frame(run_dir):
    info, (track,) = plotting.load_tracks(run_dir, ids=["long"])
    assert (info.chunk_length, info.min_score) == (500, 0.5)
    assert [(c.start, c.end) for c in track.chunks] == chunk_bounds(1200, 500)
    first, middle, last = track.chunks
    assert (first.score, first.is_virus) == (0.55, False)
    assert (middle.score, middle.is_virus) == (None, None)  # no kept frame
    assert (last.score, last.is_virus) == (0.65, True)
    assert (track.virus_chunks, track.virus_score, track.call) == (1, 0.6, "virus")
    # The no-frame chunk is hatched only where no scored chunk covers it.
    assert plotting.no_frame_spans(track.chunks) == [(first.end, last.start)]
    assert plotting.chunk_overlaps(track.chunks) == []


def test_overlapping_scored_chunks_are_marked_and_never_hatched():
    chunks = [plotting.ChunkScore(1, 0, 500, 0.6, True), plotting.ChunkScore(2, 349, 700, 0.4, False)]
    assert plotting.chunk_overlaps(chunks) == [(349, 500)]
    assert plotting.no_frame_spans(chunks) == []
    assert plotting.scored_islands(chunks) == [(0, 700)]


def test_sparse_islands_stay_separate(run_dir):
    _, (track,) = plotting.load_tracks(run_dir, ids=["huge"])
    assert len(track.chunks) == 100_000
    islands = plotting.scored_islands(track.chunks)
    assert len(islands) == 3  # chunks 1000 and 1001 touch; the others stand alone
    assert len(plotting.no_frame_spans(track.chunks)) == 4


def test_axis_units():
    assert plotting.length_unit(557) == ("bp", 1)
    assert plotting.length_unit(25_000) == ("kb", 1000)
    assert plotting.length_unit(HUGE) == ("Mb", 1_000_000)
    assert plotting.format_length(HUGE) == "50 Mb"
    assert plotting.format_length(12_500) == "12.5 kb"
    assert plotting.format_length(557) == "557 bp"


def test_ids_keep_order_accept_commas_and_sequences_without_scores(run_dir):
    _, tracks = plotting.load_tracks(run_dir, ids=["noframe,empty", "short", "noframe", "tiny"])
    assert [t.sequence_id for t in tracks] == ["noframe", "empty", "short", "tiny"]
    assert tracks[0].chunks[0].score is None
    assert tracks[1].chunks == [] and tracks[3].chunks == []


def test_unknown_id_is_a_usage_error(run_dir):
    with pytest.raises(plotting.PlotUsageError, match="nope") as info:
        plotting.load_tracks(run_dir, ids=["short", "nope"])
    assert info.value.exit_code == 2


def test_not_a_run_directory(tmp_path):
    with pytest.raises(InputError, match="not a finished virnucpro predict run"):
        plotting.load_tracks(tmp_path)


def test_run_of_an_older_version_says_how_to_update(run_dir):
    (run_dir / "contig_summary.tsv").write_text(OLD_SUMMARY_HEADER)
    with pytest.raises(InputError, match="older virnucpro.*re-run the same predict command"):
        plotting.load_tracks(run_dir)


def test_run_info_from_run_summary_first(run_dir):
    (run_dir / "run_summary.json").write_text(json.dumps({"chunk_length": 300, "notice": "demo",
                                                          "calls": {"min_score": 0.7}}))
    info = plotting.read_run_info(run_dir)
    assert (info.chunk_length, info.notice, info.min_score) == (300, "demo", 0.7)


def test_output_format_by_extension():
    assert plotting.output_format(Path("a.PDF")) == "pdf"
    assert plotting.output_format(Path("a.png")) == "png"
    with pytest.raises(plotting.PlotUsageError, match=r"\.jpg"):
        plotting.output_format(Path("a.jpg"))


def test_render_png_and_multipage_pdf(run_dir, tmp_path):
    pytest.importorskip("matplotlib")
    info, tracks = plotting.load_tracks(run_dir, ids=["huge", "long", "short", "noframe", "empty", "tiny"])
    png = plotting.render(tracks, info, tmp_path / "out" / "p.png", "test")
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    height = int.from_bytes(data[20:24], "big")
    assert height > 6 * 1.5 * 150  # one panel per sequence, stacked
    pdf = plotting.render(tracks * 2, info, tmp_path / "p.pdf", "test")  # 12 panels -> 2 pages of <= 6
    assert pdf.read_bytes()[:5] == b"%PDF-"
    assert pdf.read_bytes().count(b"/Type /Page\n") + pdf.read_bytes().count(b"/Type /Page ") == 2
    assert not [p for p in tmp_path.rglob(".*tmp-*")]  # written atomically


def test_regions_are_read_for_the_chosen_sequences_and_drawn(run_dir, tmp_path):
    from virnucpro.pipeline.outputs import RunPaths
    from virnucpro.pipeline.report.regions import write_regions

    assert plotting.load_tracks(run_dir, ids=["long"])[1][0].regions == []  # a run made before regions
    write_regions(RunPaths(run_dir), 0.5, gap=0, min_chunks=1)
    info, tracks = plotting.load_tracks(run_dir, ids=["long", "huge"])
    long, huge = tracks
    bounds = chunk_bounds(1200, 500)
    assert long.regions == [bounds[0], bounds[2]]  # chunks 1 and 3 (score >= 0.5), 0-based half-open
    first, second = chunk_bounds(HUGE, 500)[999:1001]
    assert huge.regions[0] == (first[0], second[1]) and len(huge.regions) == 2
    pytest.importorskip("matplotlib")
    png = plotting.render(tracks, info, tmp_path / "regions.png", "regions")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_subtitle_says_how_the_plotted_sequences_were_chunked():
    """150-bp reads under the 500-bp model are one 150-bp chunk each, not "chunks of 500 bp"."""
    def track(length: int) -> plotting.SequenceTrack:
        return plotting.SequenceTrack(f"s{length}", length, "scored", 0.5)

    assert plotting.chunk_phrase([track(150), track(150)], 500) == (
        "one chunk per sequence (150 bp, shorter than the 500-bp chunks)")
    assert plotting.chunk_phrase([track(120), track(150)], 500).startswith("one chunk per sequence (120-150 bp")
    assert plotting.chunk_phrase([track(2000)], 500) == "chunks of 500 bp"
    assert "a shorter sequence is one chunk" in plotting.chunk_phrase([track(2000), track(150)], 500)


def test_tables_of_the_previous_version_are_still_plotted(run_dir):
    """Runs made before issue 29 (chunks_virus / is_virus headers) are read as before."""
    from virnucpro.pipeline.report import per_sequence

    for name, new, previous in (
        ("contig_summary.tsv", CONTIG_SUMMARY_HEADER, per_sequence.PREVIOUS_CONTIG_SUMMARY_HEADER),
        ("chunk_scores.tsv", CHUNK_SCORES_HEADER, per_sequence.EARLIER_CHUNK_SCORES_HEADER),
    ):
        text = (run_dir / name).read_text()
        (run_dir / name).write_text(previous + text[len(new):])
    _, tracks = plotting.load_tracks(run_dir, top=3)
    assert tracks and all(t.chunks for t in tracks)
