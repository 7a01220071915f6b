"""``virnucpro plot``: chunk scores along each sequence, read back from a finished run.

What one panel shows (one panel per input sequence, the modern form of the
published ``drew_fig.py``):

* x: position in bp along the sequence. Each chunk covers
  :func:`~virnucpro.sequence.chunking.chunk_bounds` of the sequence length and
  the run's chunk length, so overlapping chunks (the last one usually
  overlaps its neighbour) are drawn where they really are.
* y: the chunk's highest virus score (``score2`` of ``prediction_results.txt``,
  maximum over the chunk's kept frames).
* colour: the chunk's call, ``Is_Virus`` of ``prediction_results_highestscore.csv``
  (virus vs others). A chunk called *others* can still reach above 0.5: the
  call compares the highest virus score with the highest others score of any
  frame, each taken separately.
* grey hatching: chunks with no kept frame (no six-frame translation passed
  the stop-codon filter), which have no score at all.
* a dashed line at 0.5.

Reading streams the three tables once and keeps only the chosen sequences'
chunks in memory, so plotting a few sequences of a huge run is cheap.
Rendering needs matplotlib, the optional extra ``virnucpro[plot]``.

Output: a ``.pdf`` is one page per :data:`PANELS_PER_PAGE` sequences; a
``.png`` (or ``.svg``) is one image with every panel stacked in a column.
"""

from __future__ import annotations

import heapq
import json
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from virnucpro.errors import InputError, OutputError, PlotUsageError, VirnucproError
from virnucpro.pipeline import results
from virnucpro.pipeline.checkpoint import atomic_write
from virnucpro.pipeline.outputs import RunPaths
from virnucpro.sequence.chunking import chunk_bounds
from virnucpro.sequence.ids import chunk_of_frame, parse_chunk_id

logger = logging.getLogger(__name__)

DEFAULT_TOP = 10
PANELS_PER_PAGE = 6
FORMATS = ("pdf", "png", "svg")
INSTALL_HINT = "pip install 'virnucpro[plot]'"

# Okabe-Ito colours: distinguishable with the common colour-vision deficiencies.
VIRUS_COLOUR = "#D55E00"
OTHERS_COLOUR = "#0072B2"
NO_FRAME_COLOUR = "#BBBBBB"


@dataclass(frozen=True)
class ChunkScore:
    """One chunk of a sequence as plotted.

    Attributes:
        index: 1-based chunk number (``<id>_chunk_<index>``).
        start: 0-based start in bp.
        end: end in bp (exclusive).
        max_virus: highest virus score over the chunk's kept frames; None if it has none.
        is_virus: the chunk's call (``Is_Virus``); None if it has no kept frame.
    """

    index: int
    start: int
    end: int
    max_virus: float | None
    is_virus: bool | None


@dataclass
class SequenceTrack:
    """One input sequence: its row of ``contig_summary.tsv`` and its chunks."""

    sequence_id: str
    length: int
    status: str
    max_virus: float | None
    chunks: list[ChunkScore] = field(default_factory=list)

    @property
    def virus_chunks(self) -> int:
        return sum(1 for c in self.chunks if c.is_virus)


@dataclass(frozen=True)
class RunInfo:
    """What the plot needs to know about the run besides the tables."""

    chunk_length: int
    notice: str | None = None


# --------------------------------------------------------------------------- reading


def read_run_info(run_dir: Path) -> RunInfo:
    """Chunk length (and the demo notice) from ``run_summary.json``, else ``run.json``.

    Raises:
        InputError: neither file gives a chunk length.
    """
    paths = RunPaths(run_dir)
    for path, key in ((paths.run_summary, None), (paths.run_json, "params")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        section = data.get(key, {}) if key else data
        if isinstance(section, dict) and isinstance(section.get("chunk_length"), int):
            return RunInfo(section["chunk_length"], data.get("notice") if key is None else None)
    raise InputError(f"{run_dir}: no chunk length in {paths.run_summary.name} or {paths.run_json.name}; "
                     "is this a virnucpro predict output directory?")


def _contig_rows(path: Path) -> Iterator[SequenceTrack]:
    with open(path, encoding="utf-8") as handle:
        header = handle.readline()
        if header != results.CONTIG_SUMMARY_HEADER:
            raise InputError(f"{path}: unexpected header {header.strip()!r}")
        for number, line in enumerate(handle, start=2):
            fields = line.rstrip("\n").split("\t")
            try:
                seq_id, length, _chunks, _with_frames, _virus, max_score, status = fields
                score = None if max_score == "NA" else float(max_score)
                yield SequenceTrack(seq_id, int(length), status, score)
            except ValueError:
                raise InputError(f"{path}, line {number}: malformed row") from None


def select_sequences(contig_summary: Path, top: int = DEFAULT_TOP, ids: Sequence[str] | None = None) -> list[SequenceTrack]:
    """The sequences to plot: ``ids`` in the order given, else the ``top`` by highest virus score.

    Ties keep input order; sequences without any score (no kept frame, empty)
    are never among the top, but can be asked for by ID. An ``ids`` entry that
    is not a known ID is split at commas (``--ids a,b``).

    Raises:
        PlotUsageError: an ID is not in the run.
        InputError: the table is missing or malformed.
    """
    if not contig_summary.is_file():
        raise InputError(f"{contig_summary.parent} is not a finished virnucpro predict run "
                         f"(no {contig_summary.name})")
    if ids:
        # Memory follows the IDs asked for, not the run: keep only matching rows.
        candidates = set(ids) | {v for value in ids for v in value.split(",") if v}
        rows = {row.sequence_id: row for row in _contig_rows(contig_summary) if row.sequence_id in candidates}
        wanted: list[str] = []
        for value in ids:
            wanted.extend([value] if value in rows else [v for v in value.split(",") if v])
        unknown = [v for v in wanted if v not in rows]
        if unknown:
            shown = ", ".join(unknown[:3]) + (f" and {len(unknown) - 3} more" if len(unknown) > 3 else "")
            raise PlotUsageError(
                f"not in {contig_summary}: {shown} (IDs are the first word of each FASTA header; "
                f"see the sequence_id column)"
            )
        return [rows[v] for v in dict.fromkeys(wanted)]
    scored = ((row.max_virus, -n, row) for n, row in enumerate(_contig_rows(contig_summary)) if row.max_virus is not None)
    return [row for _, _, row in heapq.nlargest(top, scored, key=lambda item: item[:2])]


def load_tracks(run_dir: str | Path, top: int = DEFAULT_TOP, ids: Sequence[str] | None = None) -> tuple[RunInfo, list[SequenceTrack]]:
    """Read a finished run and build the chosen sequences' chunk tracks.

    Args:
        run_dir: a ``virnucpro predict`` output directory.
        top: how many sequences to take by highest virus score when ``ids`` is empty.
        ids: sequence IDs to plot instead.

    Returns:
        The run's chunk length (and notice) and one track per chosen sequence.
    """
    paths = RunPaths(Path(run_dir))
    tracks = select_sequences(paths.contig_summary, top, ids)
    info = read_run_info(paths.root)
    chosen = {t.sequence_id for t in tracks}
    max_virus: dict[tuple[str, int], float] = {}
    calls: dict[tuple[str, int], bool] = {}
    for table in (paths.predictions, paths.highest_score):
        if not table.is_file():
            raise InputError(f"{paths.root} is not a finished virnucpro predict run (no {table.name})")
    with open(paths.predictions, encoding="utf-8") as handle:
        next(handle, None)
        for line in handle:
            frame_id, _label, _others, virus = line.rstrip("\n").split("\t")
            key = parse_chunk_id(chunk_of_frame(frame_id))
            if key is not None and key[0] in chosen:
                score = float(virus)
                max_virus[key] = max(score, max_virus.get(key, -math.inf))
    with open(paths.highest_score, encoding="utf-8") as handle:
        next(handle, None)
        for line in handle:
            chunk_id, is_virus = line.rstrip("\n").split("\t")
            key = parse_chunk_id(chunk_id)
            if key is not None and key[0] in chosen:
                calls[key] = is_virus == "True"
    for track in tracks:
        if track.length <= 0:
            continue
        for index, (start, end) in enumerate(chunk_bounds(track.length, info.chunk_length), start=1):
            key = (track.sequence_id, index)
            track.chunks.append(ChunkScore(index, start, end, max_virus.get(key), calls.get(key)))
    return info, tracks


# --------------------------------------------------------------------------- drawing


def _matplotlib():
    try:  # Figure objects draw without pyplot, so the user's matplotlib backend is left alone
        from matplotlib.figure import Figure
    except ImportError:
        raise VirnucproError(f"plotting needs matplotlib, an optional extra: {INSTALL_HINT}") from None
    return Figure


def output_format(path: Path) -> str:
    """``pdf``, ``png`` or ``svg`` from the file extension.

    Raises:
        PlotUsageError: another extension (exit 2).
    """
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise PlotUsageError(f"{path}: unknown plot format {path.suffix or '(no extension)'!r}; "
                             f"use a file name ending in {', '.join('.' + f for f in FORMATS)}")
    return fmt


def _no_frame_spans(chunks: Sequence[ChunkScore]) -> list[tuple[int, int]]:
    """Chunks without a kept frame, overlapping or touching ones merged into one span."""
    spans: list[tuple[int, int]] = []
    for chunk in chunks:
        if chunk.max_virus is not None:
            continue
        if spans and chunk.start <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], chunk.end))
        else:
            spans.append((chunk.start, chunk.end))
    return spans


def _draw_panel(ax, track: SequenceTrack, chunk_length: int, show_xlabel: bool) -> None:
    from matplotlib.patches import Rectangle

    length = max(track.length, 1)
    ax.set_xlim(0, length)
    ax.set_ylim(0, 1.0)
    ax.set_yticks([0, 0.5, 1.0])
    ax.grid(axis="y", color="#EEEEEE", linewidth=0.6)
    ax.set_axisbelow(True)
    for start, end in _no_frame_spans(track.chunks):
        ax.add_patch(Rectangle((start, 0), end - start, 1.0, facecolor="#F4F4F4", edgecolor=NO_FRAME_COLOUR,
                               hatch="///", linewidth=0, zorder=0.5))
        if end - start >= 0.06 * length:
            ax.text((start + end) / 2, 0.8, "no frame", ha="center", va="center", fontsize=7, color="#555555",
                    zorder=3, bbox={"facecolor": "white", "edgecolor": "none", "pad": 1.0, "alpha": 0.9})
    for chunk in track.chunks:
        if chunk.max_virus is None:
            continue
        width = chunk.end - chunk.start
        colour = VIRUS_COLOUR if chunk.is_virus else OTHERS_COLOUR
        ax.add_patch(Rectangle((chunk.start, 0), width, chunk.max_virus, facecolor=colour, alpha=0.18,
                               linewidth=0, zorder=1))
        ax.add_patch(Rectangle((chunk.start, 0), width, chunk.max_virus, facecolor="none", edgecolor=colour,
                               linewidth=0.7, zorder=1.5))
        ax.hlines(chunk.max_virus, chunk.start, chunk.end, colors=colour, linewidth=2.4, zorder=2)
    ax.axhline(0.5, color="#444444", linestyle="--", linewidth=0.8)
    if track.length <= 0:
        ax.text(0.5, 0.5, "empty sequence (skipped by predict)", transform=ax.transAxes, ha="center", va="center",
                fontsize=8, color="#777777")
    n = len(track.chunks)
    best = f"max {track.max_virus:.3f}" if track.max_virus is not None else track.status.replace("_", " ")
    ax.set_title(track.sequence_id, loc="left", fontsize=9, fontweight="bold")
    ax.set_title(f"{track.length:,} bp, {n} chunk{'s' if n != 1 else ''}, {track.virus_chunks} called virus, {best}",
                 loc="right", fontsize=8, color="#444444")
    ax.set_ylabel("virus score", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.ticklabel_format(axis="x", style="plain", useOffset=False)
    if show_xlabel:
        ax.set_xlabel("position in sequence (bp)", fontsize=8)


def _legend(fig) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [
        Patch(facecolor=VIRUS_COLOUR, alpha=0.6, label="chunk called virus"),
        Patch(facecolor=OTHERS_COLOUR, alpha=0.6, label="chunk called others"),
        Patch(facecolor="#F0F0F0", edgecolor=NO_FRAME_COLOUR, hatch="///", label="no kept frame"),
        Line2D([0], [0], color="#444444", linestyle="--", linewidth=0.8, label="0.5"),
    ]
    fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 1.0 - 0.55 / fig.get_figheight()),
               ncol=4, fontsize=8, frameon=False)


def _page(Figure, tracks: Sequence[SequenceTrack], info: RunInfo, title: str, page: str = ""):
    panel_h, header_h = 1.55, 1.05
    fig = Figure(figsize=(10, header_h + panel_h * len(tracks)))
    top = 1.0 - header_h / fig.get_figheight()
    fig.subplots_adjust(left=0.08, right=0.98, top=top, bottom=0.5 / fig.get_figheight(), hspace=0.75)
    axes = fig.subplots(len(tracks), 1, squeeze=False)[:, 0]
    for i, (ax, track) in enumerate(zip(axes, tracks)):
        _draw_panel(ax, track, info.chunk_length, show_xlabel=i == len(tracks) - 1)
    fig.suptitle(f"{title}{page}", x=0.08, ha="left", y=1.0 - 0.12 / fig.get_figheight(), va="top",
                 fontsize=11, fontweight="bold")
    subtitle = (f"chunks of {info.chunk_length} bp; height: highest virus score (score2) over the chunk's kept "
                "frames; colour: the chunk's call (Is_Virus)")
    fig.text(0.08, 1.0 - 0.38 / fig.get_figheight(), subtitle, ha="left", va="top", fontsize=8, color="#444444")
    if info.notice:
        fig.text(0.98, 1.0 - 0.14 / fig.get_figheight(), "DEMO MODELS: scores are meaningless", ha="right",
                 va="top", fontsize=9, color="#B00000", fontweight="bold")
    _legend(fig)
    return fig


def render(tracks: Sequence[SequenceTrack], info: RunInfo, output: str | Path, title: str) -> Path:
    """Draw the tracks into ``output`` (format from its extension), written atomically.

    Raises:
        VirnucproError: matplotlib is missing (exit 1) or the extension is unknown (exit 2).
        OutputError: the file cannot be written.
    """
    output = Path(output)
    fmt = output_format(output)
    Figure = _matplotlib()
    if not tracks:
        raise InputError("nothing to plot: the run has no scored sequence (use --ids to plot others)")

    def write(handle: IO[bytes]) -> None:
        if fmt == "pdf":
            from matplotlib.backends.backend_pdf import PdfPages

            pages = [tracks[i:i + PANELS_PER_PAGE] for i in range(0, len(tracks), PANELS_PER_PAGE)]
            with PdfPages(handle, metadata={"Creator": "virnucpro plot", "CreationDate": None}) as pdf:
                for number, page in enumerate(pages, start=1):
                    label = f" (page {number} of {len(pages)})" if len(pages) > 1 else ""
                    pdf.savefig(_page(Figure, page, info, title, label))
            return
        _page(Figure, tracks, info, title).savefig(handle, format=fmt, dpi=150)

    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create directory {output.parent}: {exc.strerror or exc}") from None
    atomic_write(output, write)
    logger.debug("wrote %s (%d sequence(s))", output, len(tracks))
    return output


def plot_run(run_dir: str | Path, output: str | Path | None = None, top: int = DEFAULT_TOP,
             ids: Sequence[str] | None = None) -> Path:
    """Plot a finished run: :func:`load_tracks` then :func:`render` (default ``DIR/plots.pdf``)."""
    run_dir = Path(run_dir)
    target = Path(output) if output is not None else RunPaths(run_dir).plots
    output_format(target)  # fail on a bad extension before reading anything
    _matplotlib()
    info, tracks = load_tracks(run_dir, top, ids)
    chosen = "selected" if ids else f"top {len(tracks)} by virus score"
    return render(tracks, info, target, f"VirNucPro chunk scores: {run_dir.resolve().name} ({chosen})")
