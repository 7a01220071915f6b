"""``virnucpro plot``: chunk scores along each sequence, read back from a finished run.

What one panel shows (one panel per input sequence, the modern form of the
published ``drew_fig.py``):

* x: position along the sequence, ticks in bp, kb or Mb by the sequence's
  length. Each chunk covers its ``start``-``end`` of ``chunk_scores.tsv``, so
  overlapping chunks (the last one usually overlaps its neighbour) are drawn
  where they really are; where two scored chunks overlap, the overlap is
  marked by a darker band under the bars and both chunks' edges, never by the
  grey hatching of "no kept frame".
* y: the chunk score ``(max + min) / 2`` of its kept frames' virus scores,
  which is >= 0.5 exactly when the chunk is called virus.
* colour: the chunk's call, ``Is_Virus`` (virus vs others).
* grey hatching: stretches covered only by chunks with no kept frame (no
  six-frame translation passed the stop-codon filter), which have no score.
* scored stretches too narrow to see at the panel's width (short islands in a
  long sparse sequence) are each widened to a minimum visible width, one
  span per island, never joined into one band.
* a dashed line at the run's ``--min-score`` (the sequence-call threshold),
  not drawn on a panel without chunks (empty or too short sequences).
* a purple bar along the top of the panel for each viral region of
  ``viral_regions.tsv`` (:mod:`.regions`), when the run has that file.

Sequences are taken by ``virus_score`` by default (highest first, ties in
input order). Reading streams ``contig_summary.tsv`` and ``chunk_scores.tsv``
once and keeps only the chosen sequences' chunks in memory. Rendering needs
matplotlib, the optional extra ``virnucpro[plot]``.

Output: a ``.pdf`` is one page per :data:`PANELS_PER_PAGE` sequences; a
``.png`` (or ``.svg``) is one image with every panel stacked in a column.
"""

from __future__ import annotations

import heapq
import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from virnucpro.errors import InputError, OutputError, PlotUsageError, VirnucproError
from virnucpro.pipeline.checkpoint import atomic_write
from virnucpro.pipeline.outputs import RunPaths
from virnucpro.pipeline.report import per_sequence, regions
from virnucpro.sequence.ids import parse_chunk_id

logger = logging.getLogger(__name__)

DEFAULT_TOP = 10
PANELS_PER_PAGE = 6
FORMATS = ("pdf", "png", "svg")
INSTALL_HINT = "pip install 'virnucpro[plot]'"

# Okabe-Ito colours: distinguishable with the common colour-vision deficiencies.
VIRUS_COLOUR = "#D55E00"
OTHERS_COLOUR = "#0072B2"
NO_FRAME_COLOUR = "#BBBBBB"
OVERLAP_COLOUR = "#333333"
REGION_COLOUR = "#CC79A7"
#: A scored island narrower than this fraction of its panel is widened to it (else it is invisible).
MIN_VISIBLE_FRACTION = 0.003


@dataclass(frozen=True)
class ChunkScore:
    """One chunk of a sequence as plotted.

    Attributes:
        index: 1-based chunk number (``<id>_chunk_<index>``).
        start: 0-based start in bp.
        end: end in bp (exclusive).
        score: the chunk score; None if the chunk has no kept frame.
        is_virus: a virus chunk (``virus_chunk`` of ``chunk_scores.tsv``: chunk score >= --min-score;
            the published call in a table made before issue 29); None if it has no kept frame.
    """

    index: int
    start: int
    end: int
    score: float | None
    is_virus: bool | None


@dataclass
class SequenceTrack:
    """One input sequence: its row of ``contig_summary.tsv`` and its chunks."""

    sequence_id: str
    length: int
    status: str
    virus_score: float | None
    call: str = per_sequence.NO_CALL
    chunks: list[ChunkScore] = field(default_factory=list)
    #: Viral regions (``viral_regions.tsv``) as 0-based half-open ``(start, end)``.
    regions: list[tuple[int, int]] = field(default_factory=list)

    @property
    def virus_chunks(self) -> int:
        return sum(1 for c in self.chunks if c.is_virus)


@dataclass(frozen=True)
class RunInfo:
    """What the plot needs to know about the run besides the tables."""

    chunk_length: int
    notice: str | None = None
    min_score: float = per_sequence.DEFAULT_MIN_SCORE


# --------------------------------------------------------------------------- reading


def read_run_info(run_dir: Path) -> RunInfo:
    """Chunk length, threshold (and the demo notice) from ``run_summary.json``, else ``run.json``.

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
            if key is not None:
                return RunInfo(section["chunk_length"])
            calls = data.get("calls") if isinstance(data.get("calls"), dict) else {}
            min_score = calls.get("min_score")
            return RunInfo(section["chunk_length"], data.get("notice"),
                           float(min_score) if isinstance(min_score, (int, float)) else per_sequence.DEFAULT_MIN_SCORE)
    raise InputError(f"{run_dir}: no chunk length in {paths.run_summary.name} or {paths.run_json.name}; "
                     "is this a virnucpro predict output directory?")


def _contig_rows(path: Path) -> Iterator[SequenceTrack]:
    with open(path, encoding="utf-8") as handle:
        header = handle.readline()
        if header == per_sequence.EARLIER_CONTIG_SUMMARY_HEADER:
            raise InputError(f"{path}: made by an older virnucpro (no virus_score column); re-run the same "
                             "predict command, which reuses every score, to add it")
        known = (per_sequence.CONTIG_SUMMARY_HEADER, per_sequence.PREVIOUS_CONTIG_SUMMARY_HEADER)
        if header not in known and header not in (per_sequence.table_header(h, True) for h in known):
            raise InputError(f"{path}: unexpected header {header.strip()!r}")
        for number, line in enumerate(handle, start=2):
            fields = line.rstrip("\n").split("\t")
            try:
                seq_id, length, _chunks, _with_frames, _virus, _max, status, score, _fraction, call = fields[:10]
                yield SequenceTrack(seq_id, int(length), status, None if score == "NA" else float(score), call)
            except ValueError:
                raise InputError(f"{path}, line {number}: malformed row") from None


def select_sequences(contig_summary: Path, top: int = DEFAULT_TOP, ids: Sequence[str] | None = None) -> list[SequenceTrack]:
    """The sequences to plot: ``ids`` in the order given, else the ``top`` by ``virus_score``.

    Ties keep input order; sequences without a score (no kept frame, empty,
    too short) are never among the top, but can be asked for by ID. An ``ids``
    entry that is not a known ID is split at commas (``--ids a,b``).

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
    scored = ((row.virus_score, -n, row) for n, row in enumerate(_contig_rows(contig_summary))
              if row.virus_score is not None)
    return [row for _, _, row in heapq.nlargest(top, scored, key=lambda item: item[:2])]


def load_tracks(run_dir: str | Path, top: int = DEFAULT_TOP, ids: Sequence[str] | None = None) -> tuple[RunInfo, list[SequenceTrack]]:
    """Read a finished run and build the chosen sequences' chunk tracks.

    Args:
        run_dir: a ``virnucpro predict`` output directory.
        top: how many sequences to take by ``virus_score`` when ``ids`` is empty.
        ids: sequence IDs to plot instead.

    Returns:
        The run's chunk length, threshold (and notice) and one track per chosen sequence.
    """
    paths = RunPaths(Path(run_dir))
    tracks = select_sequences(paths.contig_summary, top, ids)
    info = read_run_info(paths.root)
    if not paths.chunk_scores.is_file():
        raise InputError(f"{paths.root} is not a finished virnucpro predict run (no {paths.chunk_scores.name})")
    chosen = {t.sequence_id: t for t in tracks}
    with open(paths.chunk_scores, encoding="utf-8") as handle:
        known = (per_sequence.CHUNK_SCORES_HEADER, per_sequence.EARLIER_CHUNK_SCORES_HEADER)
        if handle.readline() not in (*known, *(per_sequence.table_header(h, True) for h in known)):
            raise InputError(f"{paths.chunk_scores}: unexpected header")
        for number, line in enumerate(handle, start=2):
            seq_id, chunk_id, start, end, _frames, _max, score, is_virus = line.rstrip("\n").split("\t")[:8]
            track = chosen.get(seq_id)
            if track is None:
                continue
            key = parse_chunk_id(chunk_id)
            if key is None:
                raise InputError(f"{paths.chunk_scores}, line {number}: malformed chunk ID {chunk_id!r}")
            track.chunks.append(ChunkScore(key[1], int(start) - 1, int(end), None if score == "NA" else float(score),
                                           None if is_virus == "NA" else is_virus == "True"))
    if paths.regions_tsv.is_file():  # runs made before regions existed have none
        for region_seq, region_start, region_end in regions.read_regions(paths.regions_tsv):
            if region_seq in chosen:
                chosen[region_seq].regions.append((region_start - 1, region_end))
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


def _merged(spans: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted spans with overlapping or touching ones joined."""
    out: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def _subtract(spans: Sequence[tuple[int, int]], holes: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """``spans`` minus ``holes`` (both merged and sorted)."""
    out: list[tuple[int, int]] = []
    for start, end in spans:
        cursor = start
        for h_start, h_end in holes:
            if h_end <= cursor or h_start >= end:
                continue
            if h_start > cursor:
                out.append((cursor, h_start))
            cursor = max(cursor, h_end)
        if cursor < end:
            out.append((cursor, end))
    return out


def scored_islands(chunks: Sequence[ChunkScore]) -> list[tuple[int, int]]:
    """Stretches covered by scored chunks, overlapping or touching chunks joined."""
    return _merged([(c.start, c.end) for c in chunks if c.score is not None])


def no_frame_spans(chunks: Sequence[ChunkScore]) -> list[tuple[int, int]]:
    """Stretches covered only by chunks without a kept frame (never under a scored chunk)."""
    return _subtract(_merged([(c.start, c.end) for c in chunks if c.score is None]), scored_islands(chunks))


def chunk_overlaps(chunks: Sequence[ChunkScore]) -> list[tuple[int, int]]:
    """Where two scored chunks overlap."""
    scored = sorted((c.start, c.end) for c in chunks if c.score is not None)
    return _merged([(b_start, min(a_end, b_end)) for (_, a_end), (b_start, b_end) in zip(scored, scored[1:])
                    if b_start < a_end])


def length_unit(length: int) -> tuple[str, int]:
    """Unit of a panel's axis: ``bp`` up to 10 kb, ``kb`` up to 10 Mb, ``Mb`` beyond."""
    if length >= 10_000_000:
        return "Mb", 1_000_000
    if length >= 10_000:
        return "kb", 1_000
    return "bp", 1


def format_length(length: int) -> str:
    """A length for a title: ``557 bp``, ``12.5 kb``, ``50 Mb``."""
    unit, scale = length_unit(length)
    return f"{length:,} bp" if scale == 1 else f"{length / scale:.4g} {unit}"


def _draw_panel(ax, track: SequenceTrack, min_score: float, show_xlabel: bool) -> None:
    from matplotlib.patches import Rectangle
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    length = max(track.length, 1)
    unit, scale = length_unit(track.length)
    ax.set_xlim(0, length)
    ax.set_ylim(0, 1.0)
    ax.set_yticks([0, 0.5, 1.0])
    ax.grid(axis="y", color="#EEEEEE", linewidth=0.6)
    ax.set_axisbelow(True)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=7, steps=[1, 2, 2.5, 5, 10], integer=scale == 1))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: f"{x / scale:,.6g}"))
    for start, end in no_frame_spans(track.chunks):
        ax.add_patch(Rectangle((start, 0), end - start, 1.0, facecolor="#F4F4F4", edgecolor=NO_FRAME_COLOUR,
                               hatch="///", linewidth=0, zorder=0.5))
        if end - start >= 0.06 * length:
            ax.text((start + end) / 2, 0.8, "no frame", ha="center", va="center", fontsize=7, color="#555555",
                    zorder=3, bbox={"facecolor": "white", "edgecolor": "none", "pad": 1.0, "alpha": 0.9})
    for start, end in chunk_overlaps(track.chunks):
        ax.add_patch(Rectangle((start, 0), end - start, 0.05, facecolor=OVERLAP_COLOUR, linewidth=0, zorder=2.5))
    min_width = MIN_VISIBLE_FRACTION * length
    scored = [c for c in track.chunks if c.score is not None]
    for start, end in scored_islands(track.chunks):
        if end - start >= min_width:
            continue
        inside = [c for c in scored if c.start >= start and c.end <= end]
        height = max(c.score for c in inside if c.score is not None)
        colour = VIRUS_COLOUR if any(c.is_virus for c in inside) else OTHERS_COLOUR
        middle = (start + end) / 2
        ax.add_patch(Rectangle((middle - min_width / 2, 0), min_width, height, facecolor=colour, alpha=0.7,
                               linewidth=0, zorder=1.8))
    for chunk in scored:
        score = chunk.score if chunk.score is not None else 0.0
        width = chunk.end - chunk.start
        colour = VIRUS_COLOUR if chunk.is_virus else OTHERS_COLOUR
        ax.add_patch(Rectangle((chunk.start, 0), width, score, facecolor=colour, alpha=0.18, linewidth=0, zorder=1))
        ax.add_patch(Rectangle((chunk.start, 0), width, score, facecolor="none", edgecolor=colour,
                               linewidth=0.7, zorder=1.5))
        ax.hlines(score, chunk.start, chunk.end, colors=colour, linewidth=2.4, zorder=2)
    for start, end in track.regions:
        ax.add_patch(Rectangle((start, 0.94), end - start, 0.06, facecolor=REGION_COLOUR, linewidth=0, zorder=3.5))
    if track.chunks:
        ax.axhline(min_score, color="#444444", linestyle="--", linewidth=0.8)
    else:
        why = {"empty_skipped": "empty sequence (skipped by predict)",
               per_sequence.STATUS_TOO_SHORT: "shorter than --min-length (not scored)"}
        ax.grid(False)  # no line through the label
        ax.text(0.5, 0.5, why.get(track.status, track.status.replace("_", " ")), transform=ax.transAxes,
                ha="center", va="center", fontsize=8, color="#777777")
    if track.length <= 0:
        ax.set_xticks([])
    n = len(track.chunks)
    if track.virus_score is not None:
        verdict = f"virus_score {track.virus_score:.3f}: {track.call.replace('_', ' ')}"
    else:
        verdict = f"no call ({track.status.replace('_', ' ')})"
    ax.set_title(track.sequence_id, loc="left", fontsize=9, fontweight="bold")
    regions_text = f", {len(track.regions)} viral region{'s' if len(track.regions) != 1 else ''}" if track.regions else ""
    ax.set_title(f"{format_length(track.length)}, {n} chunk{'s' if n != 1 else ''}, {track.virus_chunks} called "
                 f"virus{regions_text}; {verdict}", loc="right", fontsize=8, color="#444444")
    ax.set_ylabel("chunk score", fontsize=8)
    ax.tick_params(labelsize=7)
    if show_xlabel:
        ax.set_xlabel(f"position in sequence ({unit})", fontsize=8)
    else:
        ax.set_xlabel(unit, fontsize=7, color="#666666", loc="right", labelpad=0)


def _legend(fig, min_score: float) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [
        Patch(facecolor=VIRUS_COLOUR, alpha=0.6, label="chunk called virus"),
        Patch(facecolor=OTHERS_COLOUR, alpha=0.6, label="chunk called others"),
        Patch(facecolor="#F0F0F0", edgecolor=NO_FRAME_COLOUR, hatch="///", label="no kept frame"),
        Patch(facecolor=OVERLAP_COLOUR, label="chunks overlap"),
        Patch(facecolor=REGION_COLOUR, label="viral region"),
        Line2D([0], [0], color="#444444", linestyle="--", linewidth=0.8, label=f"--min-score {min_score:g}"),
    ]
    fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 1.0 - 0.55 / fig.get_figheight()),
               ncol=6, fontsize=8, frameon=False)


def chunk_phrase(tracks: Sequence[SequenceTrack], chunk_length: int) -> str:
    """How the plotted sequences were chunked: ``chunks of N bp`` only when that is true of them
    (a sequence shorter than N is one chunk of its own length)."""
    shorter = [t.length for t in tracks if 0 < t.length < chunk_length]
    if not shorter:
        return f"chunks of {chunk_length} bp"
    if len(shorter) == len(tracks):
        low, high = min(shorter), max(shorter)
        size = f"{low} bp" if low == high else f"{low}-{high} bp"
        return f"one chunk per sequence ({size}, shorter than the {chunk_length}-bp chunks)"
    return f"chunks of {chunk_length} bp (a shorter sequence is one chunk of its length)"


def _page(Figure, tracks: Sequence[SequenceTrack], info: RunInfo, title: str, page: str = ""):
    panel_h, header_h = 1.55, 1.05
    fig = Figure(figsize=(10, header_h + panel_h * len(tracks)))
    top = 1.0 - header_h / fig.get_figheight()
    fig.subplots_adjust(left=0.08, right=0.98, top=top, bottom=0.5 / fig.get_figheight(), hspace=0.75)
    axes = fig.subplots(len(tracks), 1, squeeze=False)[:, 0]
    for i, (ax, track) in enumerate(zip(axes, tracks)):
        _draw_panel(ax, track, info.min_score, show_xlabel=i == len(tracks) - 1)
    fig.suptitle(f"{title}{page}", x=0.08, ha="left", y=1.0 - 0.12 / fig.get_figheight(), va="top",
                 fontsize=11, fontweight="bold")
    subtitle = (f"{chunk_phrase(tracks, info.chunk_length)}; height: chunk score = (max + min) / 2 of the kept "
                f"frames' virus scores; colour: virus chunk (chunk score >= --min-score {info.min_score:g})")
    fig.text(0.08, 1.0 - 0.38 / fig.get_figheight(), subtitle, ha="left", va="top", fontsize=8, color="#444444")
    if info.notice:
        fig.text(0.98, 1.0 - 0.14 / fig.get_figheight(), "DEMO MODELS: scores are meaningless", ha="right",
                 va="top", fontsize=9, color="#B00000", fontweight="bold")
    _legend(fig, info.min_score)
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
    chosen = "selected" if ids else f"top {len(tracks)} by virus_score"
    return render(tracks, info, target, f"VirNucPro chunk scores: {run_dir.resolve().name} ({chosen})")


def plot_samples(root: str | Path, sample: str | None = None, output: str | None = None, top: int = DEFAULT_TOP,
                 ids: Sequence[str] | None = None) -> list[Path]:
    """Plot every finished sample of a many-sample DIR (or ``sample``) into ``DIR/<sample>/plots.pdf``,
    or into ``output`` with ``{sample}`` replaced by each name (see :mod:`.sample_dirs`)."""
    from virnucpro.pipeline.report.sample_dirs import for_each_sample, pick_samples

    if sample is None and output is not None and "{sample}" not in output:
        raise PlotUsageError(f"-o {output}: a many-sample DIR gives one plot per sample; put {{sample}} in the "
                             "name (e.g. -o plots/{sample}.png) or pick one with --sample NAME")
    if sample is None and ids:
        raise PlotUsageError("--ids names sequences of one sample: add --sample NAME")
    if output is not None:
        output_format(Path(output))
    _matplotlib()
    chosen = pick_samples(root, sample, "plot")
    return for_each_sample(chosen, lambda s: plot_run(s.folder, None if output is None else output.replace(
        "{sample}", s.name), top, ids), "plot")
