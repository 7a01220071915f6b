"""The shared batch planner: every sequence once, within budget, longest first."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from virnucpro.models.batching import plan_batches, run_in_budget


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(1, 3000), min_size=1, max_size=80), st.integers(1, 20000))
def test_plan_batches_covers_everything_within_budget(padded, budget):
    batches = plan_batches(padded, budget)
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(padded)))
    for batch in batches:
        lengths = [padded[i] for i in batch]
        assert len(batch) == 1 or max(lengths) * len(batch) <= budget
    maxima = [max(padded[i] for i in b) for b in batches]
    assert maxima == sorted(maxima, reverse=True)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 500), min_size=1, max_size=40).map(lambda xs: sorted(xs, reverse=True)),
       st.integers(1, 5000))
def test_run_in_budget_matches_the_plan_when_nothing_fails(padded, budget):
    seen: list[tuple[int, int]] = []
    assert run_in_budget(padded, budget, lambda start, count: seen.append((start, count))) == budget
    assert [count for _, count in seen] == [len(b) for b in plan_batches(padded, budget)]
