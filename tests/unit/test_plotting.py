"""Reading a run back for `virnucpro plot` and drawing it (hand-written tables, real matplotlib)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from virnucpro.errors import InputError
from virnucpro.pipeline import plotting
from virnucpro.pipeline.results import CONTIG_SUMMARY_HEADER, HIGHEST_SCORE_HEADER, PREDICTIONS_HEADER
from virnucpro.sequence.chunking import chunk_bounds

CONTIGS = [
    # id, length, chunks, with_frames, virus, max, status
    ("long", 1200, 3, 2, 1, "0.7", "scored"),
    ("short", 300, 1, 1, 1, "0.9", "scored"),
    ("tie_a", 100, 1, 1, 0, "0.4", "scored"),
    ("noframe", 250, 1, 0, 0, "NA", "no_kept_frame"),
    ("tie_b", 100, 1, 1, 0, "0.4", "scored"),
    ("empty", 0, 0, 0, 0, "NA", "empty_skipped"),
]
FRAMES = [  # frame id, score1, score2
    ("long_chunk_1F1", "0.8", "0.2"),
    ("long_chunk_1R2", "0.3", "0.7"),  # max virus 0.7, max others 0.8 -> others
    ("long_chunk_3F2", "0.35", "0.65"),
    ("short_chunk_1F1", "0.1", "0.9"),
    ("tie_a_chunk_1F1", "0.6", "0.4"),
    ("tie_b_chunk_1R1", "0.6", "0.4"),
]
CALLS = [("long_chunk_1", "False"), ("long_chunk_3", "True"), ("short_chunk_1", "True"),
         ("tie_a_chunk_1", "False"), ("tie_b_chunk_1", "False")]


@pytest.fixture()
def run_dir(tmp_path: Path) -> Path:
    (tmp_path / "contig_summary.tsv").write_text(
        CONTIG_SUMMARY_HEADER + "".join("\t".join(map(str, row)) + "\n" for row in CONTIGS))
    (tmp_path / "prediction_results.txt").write_text(
        PREDICTIONS_HEADER + "".join(f"{f}\t{'virus' if float(v) > float(o) else 'others'}\t{o}\t{v}\n"
                                     for f, o, v in FRAMES))
    (tmp_path / "prediction_results_highestscore.csv").write_text(
        HIGHEST_SCORE_HEADER + "".join(f"{c}\t{v}\n" for c, v in CALLS))
    (tmp_path / "run.json").write_text(json.dumps({"params": {"chunk_length": 500}}))
    return tmp_path


def test_top_sequences_by_max_virus_score_ties_in_input_order(run_dir):
    _, tracks = plotting.load_tracks(run_dir, top=3)
    assert [t.sequence_id for t in tracks] == ["short", "long", "tie_a"]
    _, tracks = plotting.load_tracks(run_dir, top=100)
    assert [t.sequence_id for t in tracks] == ["short", "long", "tie_a", "tie_b"]  # no NA among the top


def test_chunks_are_placed_in_bp_with_max_virus_score_call_and_no_frame(run_dir):
    info, (track,) = plotting.load_tracks(run_dir, ids=["long"])
    assert info.chunk_length == 500
    assert [(c.start, c.end) for c in track.chunks] == chunk_bounds(1200, 500)
    first, middle, last = track.chunks
    assert (first.max_virus, first.is_virus) == (0.7, False)  # highest score2 over its frames, call from the table
    assert (middle.max_virus, middle.is_virus) == (None, None)  # no kept frame
    assert (last.max_virus, last.is_virus) == (0.65, True)
    assert track.virus_chunks == 1
    assert plotting._no_frame_spans(track.chunks) == [(middle.start, middle.end)]


def test_ids_keep_order_accept_commas_and_sequences_without_scores(run_dir):
    _, tracks = plotting.load_tracks(run_dir, ids=["noframe,empty", "short", "noframe"])
    assert [t.sequence_id for t in tracks] == ["noframe", "empty", "short"]
    assert tracks[0].chunks[0].max_virus is None
    assert tracks[1].chunks == []


def test_unknown_id_is_a_usage_error(run_dir):
    with pytest.raises(plotting.PlotUsageError, match="nope") as info:
        plotting.load_tracks(run_dir, ids=["short", "nope"])
    assert info.value.exit_code == 2


def test_not_a_run_directory(tmp_path):
    with pytest.raises(InputError, match="not a finished virnucpro predict run"):
        plotting.load_tracks(tmp_path)


def test_chunk_length_from_run_summary_first(run_dir):
    (run_dir / "run_summary.json").write_text(json.dumps({"chunk_length": 300, "notice": "demo"}))
    info = plotting.read_run_info(run_dir)
    assert (info.chunk_length, info.notice) == (300, "demo")


def test_output_format_by_extension():
    assert plotting.output_format(Path("a.PDF")) == "pdf"
    assert plotting.output_format(Path("a.png")) == "png"
    with pytest.raises(plotting.PlotUsageError, match=r"\.jpg"):
        plotting.output_format(Path("a.jpg"))


def test_render_png_and_multipage_pdf(run_dir, tmp_path):
    pytest.importorskip("matplotlib")
    info, tracks = plotting.load_tracks(run_dir, ids=["long", "short", "noframe", "empty"])
    png = plotting.render(tracks, info, tmp_path / "out" / "p.png", "test")
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    height = int.from_bytes(data[20:24], "big")
    assert height > 4 * 1.5 * 150  # one panel per sequence, stacked
    pdf = plotting.render(tracks * 2, info, tmp_path / "p.pdf", "test")  # 8 panels -> 2 pages of <= 6
    assert pdf.read_bytes()[:5] == b"%PDF-"
    assert pdf.read_bytes().count(b"/Type /Page\n") + pdf.read_bytes().count(b"/Type /Page ") == 2
    assert not [p for p in tmp_path.rglob(".*tmp-*")]  # written atomically
