"""``evaluate``'s chunk and sequence levels are predict's tables (``chunk_scores.tsv``, ``contig_summary.tsv``)."""

from __future__ import annotations

import numpy as np

from virnucpro.pipeline.report.per_sequence import chunk_score_lines, contig_summary_line, sequence_result
from virnucpro.pipeline.report.results import ContigRow, chunk_calls, frame_scores
from virnucpro.training.evaluate import level_metrics
from virnucpro.training.metrics import binary_metrics

HALF_DOWN = float(np.nextafter(np.float32(0.5), np.float32(0)))  # 0.49999997

# (input file, label, record, length, chunks, {chunk: [P(virus) of its kept frames]})
INPUTS = [
    (0, 1, "knife", 600, 2, {1: [0.5], 2: [HALF_DOWN]}),  # mean 0.499999985 in float64, 0.5 in float32
    (0, 1, "v", 300, 1, {1: [0.9, 0.2, 0.7]}),
    (0, 1, "dark", 500, 1, {}),  # no kept frame: no_call in predict, no frame here
    (1, 0, "v", 900, 2, {1: [0.1, 0.3], 2: [0.8]}),  # same ID as in input 0, other label
    (1, 0, "h", 1500, 3, {2: [0.05]}),
]


def _frames() -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    frame_ids, origin, labels, virus = [], [], [], []
    for o, label, record, _, _, chunks in INPUTS:
        for k, scores in chunks.items():
            for n, score in enumerate(scores, start=1):
                frame_ids.append(f"{record}_chunk_{k}F{n}")
                origin.append(o)
                labels.append(label)
                virus.append(score)
    v = np.array(virus, dtype=np.float32)
    return frame_ids, np.array(origin), np.array(labels), np.stack([1 - v, v], axis=1).astype(np.float32)


def _predict_tables(min_score: float) -> tuple[list[list[str]], list[list[str]]]:
    """(``contig_summary.tsv`` rows, ``chunk_scores.tsv`` rows with a score) the way predict writes them."""
    frame_ids, origin, _, probabilities = _frames()
    summary, chunk_rows = [], []
    for o, _, record, length, n_chunks, chunks in INPUTS:
        rows = [i for i, (fid, fo) in enumerate(zip(frame_ids, origin)) if fo == o and fid.startswith(record + "_")]
        calls = list(chunk_calls(frame_scores([frame_ids[i] for i in rows], probabilities[rows])))
        result = sequence_result(ContigRow(record, length, n_chunks, len(chunks)), calls, min_score)
        summary.append(contig_summary_line(result).rstrip("\n").split("\t"))
        chunk_rows += [line.rstrip("\n").split("\t") for line in chunk_score_lines(result, 500)]
    return summary, [r for r in chunk_rows if r[6] != "NA"]


def test_sequence_and_chunk_levels_are_the_predict_tables():
    frame_ids, origin, labels, probabilities = _frames()
    label_of = {(o, record): label for o, label, record, *_ in INPUTS}
    expected_calls = {0.5: ["virus", "virus", "no_call", "virus", "not_virus"],
                      0.6: ["not_virus", "not_virus", "no_call", "not_virus", "not_virus"]}
    for min_score, calls in expected_calls.items():
        metrics = level_metrics(frame_ids, origin, labels, probabilities, min_score)
        summary, chunk_rows = _predict_tables(min_score)
        assert [row[-1] for row in summary] == calls
        # Sequences with a score, in order, as contig_summary.tsv gives them; the no_call one has no frame here.
        scored = [(label_of[(o, r[0])], float(r[7]), r[9] == "virus")
                  for (o, *_), r in zip(INPUTS, summary) if r[9] != "no_call"]
        want = binary_metrics(np.array([s[0] for s in scored]), np.array([s[1] for s in scored]),
                              predicted=np.array([s[2] for s in scored]))
        assert metrics["sequence"] == want and want["n"] == 4
        chunk_want = binary_metrics(np.array([1, 1, 1, 0, 0, 0]), np.array([float(r[6]) for r in chunk_rows]),
                                    predicted=np.array([r[7] == "True" for r in chunk_rows]))
        assert metrics["chunk"] == chunk_want


def test_knife_edge_sequence_is_called_on_the_float32_score():
    """The float64 mean of 0.5 and 0.49999997 is below 0.5; contig_summary's float32 score is 0.5: virus."""
    frame_ids, origin, labels, probabilities = _frames()
    keep = [i for i, f in enumerate(frame_ids) if f.startswith("knife_")]
    metrics = level_metrics([frame_ids[i] for i in keep], origin[keep], labels[keep], probabilities[keep])
    assert metrics["sequence"]["confusion_matrix"] == [[0, 0], [0, 1]]
