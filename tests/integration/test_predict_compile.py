"""``predict --compile``: speed only, so the tables do not depend on it and a finished run is not redone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.integration.test_predict_cli import EXAMPLE, RESULTS

pytestmark = pytest.mark.slow


def _predict(out: Path, *extra: str) -> dict:
    result = run_cli("predict", str(EXAMPLE), "-o", str(out), "--models", "demo", "--no-dashboard", *extra)
    assert result.returncode == 0, result.stderr.decode()
    return json.loads((out / "run_summary.json").read_text())


def test_compile_off_gives_the_default_tables_and_a_finished_run_is_not_redone(tmp_path):
    default, eager = tmp_path / "default", tmp_path / "eager"
    assert _predict(default)["compile"] == "auto"
    first = _predict(eager, "--compile", "off", "--keep-features")  # kept, so the resume checks each feature file
    assert first["compile"] == "off"
    assert {n: (eager / n).read_bytes() for n in RESULTS} == {n: (default / n).read_bytes() for n in RESULTS}
    assert "compile" not in (eager / "run.json").read_text()

    again = _predict(eager, "--keep-features")  # another --compile on the finished run
    assert again["compile"] == "auto"
    assert {stage: again["stages"][stage]["computed_shards"] for stage in ("dnabert", "esm", "score")} == {
        "dnabert": 0, "esm": 0, "score": 0}
    for stage in ("dnabert", "esm", "score"):
        assert again["stages"][stage]["reused_shards"] == first["counts"]["shards"], stage
    assert "no embedding computed" in (eager / "virnucpro.log").read_text()
    assert {n: (eager / n).read_bytes() for n in RESULTS} == {n: (default / n).read_bytes() for n in RESULTS}
