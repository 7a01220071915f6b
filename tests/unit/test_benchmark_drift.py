"""Cosine and label-agreement arithmetic of the benchmark's drift figures."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from virnucpro.benchmark.drift import (
    classify,
    cosine_rows,
    cosine_summary,
    label_agreement,
    random_classifier,
)


def test_cosine_rows_known_values():
    a = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [3.0, 4.0], [0.0, 0.0], [0.0, 0.0]])
    b = np.array([[2.0, 0.0], [0.0, 5.0], [-1.0, 0.0], [4.0, 3.0], [0.0, 0.0], [1.0, 1.0]])
    np.testing.assert_allclose(cosine_rows(a, b), [1.0, 0.0, -1.0, 24 / 25, 1.0, 0.0])


def test_cosine_rows_accepts_float32_tensors_and_matches_torch():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(7, 33, generator=g), torch.randn(7, 33, generator=g)
    expected = torch.nn.functional.cosine_similarity(a.double(), b.double(), dim=1).numpy()
    np.testing.assert_allclose(cosine_rows(a, b), expected, rtol=1e-12)


def test_cosine_rows_rejects_mismatched_shapes():
    with pytest.raises(ValueError):
        cosine_rows(np.zeros((2, 3)), np.zeros((3, 3)))


def test_cosine_summary_min_and_median():
    a = np.eye(3)
    b = np.array([[1.0, 0, 0], [1.0, 1.0, 0], [0, 0, -1.0]])
    summary = cosine_summary(a, b)
    assert summary["frames"] == 3
    assert summary["cosine_min"] == pytest.approx(-1.0)
    assert summary["cosine_median"] == pytest.approx(2**-0.5)


def test_label_agreement_counts_flips_by_direction():
    ref = np.array([1, 1, 0, 0, 1])
    other = np.array([1, 0, 1, 0, 1])
    result = label_agreement(ref, other)
    assert (result.frames, result.agree, result.flips) == (5, 3, 2)
    assert (result.virus_to_others, result.others_to_virus) == (1, 1)
    assert result.agreement == pytest.approx(0.6)
    assert result.as_dict()["reference_virus_fraction"] == pytest.approx(0.6)


def test_random_classifier_is_calibrated_deterministic_and_published_layout():
    rng = np.random.default_rng(1)
    features = rng.standard_normal((200, 40)).astype(np.float32) * 5 + 3
    model = random_classifier(40, features, seed=3)
    hidden, out = model.hidden_layer, model.output_layer
    layout = (hidden.in_features, hidden.out_features, out.out_features)
    assert layout == (40, 512, 2)
    labels = classify(model, features)
    assert 0.3 <= labels.mean() <= 0.7  # boundary runs through the data: flips are possible
    again = classify(random_classifier(40, features, seed=3), features)
    np.testing.assert_array_equal(labels, again)
    # a tiny perturbation flips few labels, a large one many
    small = classify(model, features + 1e-6 * rng.standard_normal(features.shape))
    large = classify(model, features + 5 * rng.standard_normal(features.shape))
    assert label_agreement(labels, small).agreement > 0.97
    assert label_agreement(labels, large).agreement < 0.9


def test_central_gap_threshold_never_sits_on_a_value():
    from virnucpro.benchmark.drift import central_gap_threshold

    assert central_gap_threshold(np.array([0.0, 1.0, 2.0, 10.0, 11.0])) == pytest.approx(6.0)
    for n in (1, 2, 3, 7, 100):
        values = np.random.default_rng(n).standard_normal(n)
        cut = central_gap_threshold(values)
        assert not np.any(values == cut)
        if n >= 3:
            assert 0.2 <= (values > cut).mean() <= 0.8
