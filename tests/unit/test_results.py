"""Result tables against the published tool's own output."""

from __future__ import annotations

import io
import random

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from virnucpro.pipeline.report.results import (
    chunk_calls,
    format_score,
    frame_scores,
    merge_sorted_chunk_calls,
    parse_score_line,
    write_highest_score_rows,
)


def _expected_rows(tiny_ref):
    lines = (tiny_ref / "expected" / "prediction_results.txt").read_text().splitlines(keepends=True)
    assert lines[0] == "Sequence_ID\tPrediction\tscore1\tscore2\n"
    return [parse_score_line(line) for line in lines[1:]]


def test_highest_score_table_matches_published(tiny_ref):
    rows = _expected_rows(tiny_ref)
    # Split into shards at arbitrary points (one chunk straddles a boundary) and merge back.
    cut_points = [0, 7, 8, 150, 151, 300, len(rows)]
    shards = [rows[a:b] for a, b in zip(cut_points, cut_points[1:])]
    per_shard = [sorted(chunk_calls(shard), key=lambda c: c.chunk_id) for shard in shards]
    out = io.StringIO()
    out.write("Modified_ID\tIs_Virus\n")
    write_highest_score_rows(merge_sorted_chunk_calls(per_shard), out)
    assert out.getvalue() == (tiny_ref / "expected" / "prediction_results_highestscore.csv").read_text()


def test_frame_scores_print_like_published(tiny_ref):
    rows = _expected_rows(tiny_ref)
    probs = np.array([[float(r.score_others), float(r.score_virus)] for r in rows], dtype=np.float32)
    rebuilt = frame_scores([r.frame_id for r in rows], probs)
    assert rebuilt == rows


def test_format_score_is_shortest_float32_text():
    assert format_score(np.float32(0.12100612)) == "0.12100612"
    assert format_score(np.float32(1.0)) == "1.0"
    value = np.float32(3.0517578e-05)
    assert np.float32(format_score(value)) == value


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=1, width=32), min_size=1, max_size=30), st.integers(1, 5))
def test_sharded_merge_equals_whole(values, n_cuts):
    rows = []
    for i, v in enumerate(values):
        p = np.float32(v)
        chunk = f"c{i // 3}"
        rows.append(frame_scores([f"{chunk}F{i % 3 + 1}"], np.array([[1 - p, p]], dtype=np.float32))[0])
    whole = sorted(chunk_calls(rows), key=lambda c: c.chunk_id)
    cuts = sorted(random.Random(len(values)).sample(range(len(rows) + 1), k=min(n_cuts, len(rows) + 1)))
    bounds = [0, *cuts, len(rows)]
    parts = [sorted(chunk_calls(rows[a:b]), key=lambda c: c.chunk_id) for a, b in zip(bounds, bounds[1:])]
    assert list(merge_sorted_chunk_calls(parts)) == whole


def test_probabilities_are_the_plain_softmax_without_tie_rule():
    """Nearly equal logits are not forced to 0.5/0.5 (the published tool writes e.g. 0.5/0.49999997)."""
    from virnucpro.pipeline.report.results import probabilities_from_logits

    logits = np.array([[2.0097, 2.0097 + 4.8e-7], [2.0, 2.01], [-30.0, 30.0], [0.0, 0.0]])
    probs = probabilities_from_logits(logits)
    assert probs.dtype == np.float32
    want = np.exp(logits - logits.max(axis=1, keepdims=True))
    want = (want / want.sum(axis=1, keepdims=True)).astype(np.float32)
    assert np.array_equal(probs, want)
    assert probs[0, 1] > probs[0, 0]  # a 4.8e-7 logit difference still shows
    assert probs[3].tolist() == [0.5, 0.5]
    rows = frame_scores(["aF1", "dF1"], probs[[0, 3]])
    assert rows[1].label == "others"  # an exact tie goes to class 0, as argmax does


def test_published_features_reproduce_published_scores(tiny_ref):
    """The published features through our scoring give the published table (knife-edge labels aside)."""
    import torch

    from virnucpro.models.classifier import load_classifier
    from virnucpro.pipeline.report.results import probabilities_from_logits

    dna = torch.load(tiny_ref / "expected" / "dnabert_embeddings.pt")
    esm = torch.load(tiny_ref / "expected" / "esm_embeddings.pt")
    esm_row = {fid: i for i, fid in enumerate(esm["ids"])}
    features = torch.cat([dna["embeddings"], esm["embeddings"][[esm_row[f] for f in dna["ids"]]]], dim=1)
    classifier = load_classifier(tiny_ref / "models" / "classifier_tiny.pth").double().eval()
    with torch.inference_mode():
        probs = probabilities_from_logits(classifier(features.double()).numpy())
    ours = {row.frame_id: row for row in frame_scores(dna["ids"], probs)}
    edges = 0
    for row in _expected_rows(tiny_ref):
        mine = ours[row.frame_id]
        edge = abs(float(row.score_virus) - float(row.score_others)) < 1e-6
        edges += edge
        assert mine.label == row.label or edge
        assert abs(float(mine.score_virus) - float(row.score_virus)) <= 1e-6
    assert edges == 1  # the fixture's 0.5/0.5 frame
