"""Comparisons with the published tool's tables that follow the scoring contract.

Scores within a tolerance (1e-5 against the published tool); labels and chunk calls
identical except on "knife-edge" frames and chunks, whose published
``|score2 - score1|`` (for a chunk: ``|max score2 - max score1|``) is below
:data:`KNIFE_EDGE`: float noise decides those in the published tool too.
The functions return how many knife-edge cases they met.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

KNIFE_EDGE = 1e-6


def read_table(path: Path) -> tuple[str, list[list[str]]]:
    lines = path.read_text().splitlines()
    return lines[0], [line.split("\t") for line in lines[1:]]


def chunk_maxima(prediction_rows: list[list[str]]) -> dict[str, tuple[float, float, float, int]]:
    """Per chunk, from ``prediction_results.txt`` rows: (max score1, max score2, min score2, frames)."""
    out: dict[str, tuple[float, float, float, int]] = {}
    for frame_id, _label, s1, s2 in prediction_rows:
        chunk = frame_id[:-2]
        a, b = float(np.float32(s1)), float(np.float32(s2))
        if chunk in out:
            m1, m2, n2, k = out[chunk]
            out[chunk] = (max(m1, a), max(m2, b), min(n2, b), k + 1)
        else:
            out[chunk] = (a, b, b, 1)
    return out


def assert_predictions_match(actual: Path, expected: Path, tol: float = 1e-5) -> int:
    """``prediction_results.txt`` against a reference; returns the knife-edge frames met."""
    header_a, rows_a = read_table(actual)
    header_e, rows_e = read_table(expected)
    assert header_a == header_e
    assert [r[0] for r in rows_a] == [r[0] for r in rows_e]
    scores_a = np.array([[float(r[2]), float(r[3])] for r in rows_a])
    scores_e = np.array([[float(r[2]), float(r[3])] for r in rows_e])
    assert np.abs(scores_a - scores_e).max() <= tol
    edge = np.abs(scores_e[:, 1] - scores_e[:, 0]) < KNIFE_EDGE
    for ra, re_, is_edge in zip(rows_a, rows_e, edge):
        assert ra[1] == re_[1] or is_edge, (ra, re_)
    return int(edge.sum())


def assert_chunk_calls_match(actual: Path, expected: Path, expected_predictions: Path) -> int:
    """A ``prediction_results_highestscore.csv`` against the published one; returns the knife-edge chunks."""
    header_a, rows_a = read_table(actual)
    header_e, rows_e = read_table(expected)
    assert header_a == header_e
    assert [r[0] for r in rows_a] == [r[0] for r in rows_e]
    maxima = chunk_maxima(read_table(expected_predictions)[1])
    edges = 0
    for (chunk, call_a), (_, call_e) in zip(rows_a, rows_e):
        m1, m2, _, _ = maxima[chunk]
        is_edge = abs(m2 - m1) < KNIFE_EDGE
        edges += is_edge
        assert call_a == call_e or is_edge, chunk
    return edges
