"""Translate feeds both models as it goes: a run killed while they overlap resumes to identical tables,
and run_summary.json tells when each stage started and ended and what each worker did.

The kill is real: ``VIRNUCPRO_SIGNAL_AT=overlap:translate:KILL`` makes translate SIGKILL its own
process once the first embedded shard is finished and before the next shard is written.
"""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.integration.test_predict_stop import RESULTS, predict_args, small_input

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, dict[str, bytes], dict]:
    directory = tmp_path_factory.mktemp("stream-reference")
    source = small_input(directory)
    out = directory / "out"
    result = run_cli(*predict_args(source, out))
    assert result.returncode == 0, result.stderr.decode()
    summary = json.loads((out / "run_summary.json").read_text())
    return source, {name: (out / name).read_bytes() for name in RESULTS}, summary


def test_summary_records_when_each_stage_started_and_ended(reference) -> None:
    _, _, summary = reference
    stages = summary["stages"]
    assert set(stages) >= {"translate", "dnabert", "esm", "score", "assemble"}
    for name, report in stages.items():
        assert 0 <= report["start_s"] <= report["end_s"] <= summary["wall_seconds"], (name, report)
    # One queue runs both models while translate does: no barrier between the models.
    assert summary["counts"]["shards"] > 1
    for name in ("dnabert", "esm"):
        assert stages[name]["start_s"] <= stages["translate"]["end_s"]
        assert stages[name]["start_s"] <= stages[name]["first_shard_s"] <= stages[name]["end_s"]
    assert stages["esm"]["start_s"] < stages["dnabert"]["end_s"]
    assert stages["esm"]["first_shard_s"] < stages["dnabert"]["end_s"]  # ESM-2 began before DNABERT-S ended
    # The tables are walked as shards are scored: the walk starts when translate ends, ends after scoring.
    assert stages["assemble"]["start_s"] >= stages["translate"]["end_s"]
    assert stages["assemble"]["end_s"] >= stages["score"]["end_s"]


def test_summary_reports_each_worker(reference) -> None:
    _, _, summary = reference
    (worker,) = summary["workers"]  # --device cpu: one worker, in this process
    assert worker["device"] == "cpu" and worker["restarts"] == 0
    assert worker["tasks_done"] == 2 * summary["counts"]["shards"]
    assert set(worker["load_seconds"]) == set(worker["busy_seconds"]) == {"dnabert", "esm"}
    assert set(worker["warm_up_seconds"]) == set(worker["compiled"]) == {"dnabert", "esm"}
    assert 0 <= worker["start_s"] <= worker["ready_s"] <= worker["last_task_end_s"] <= worker["end_s"]
    assert worker["start_s"] <= summary["stages"]["translate"]["end_s"]  # started while translate reads
    assert 0 < worker["busy_fraction"] <= 1


@pytest.mark.parametrize("extra", [(), ("--workers", "2")], ids=["in-process", "two-workers"])
def test_sigkill_while_translate_and_dnabert_overlap_then_resume(tmp_path, reference, extra) -> None:
    source, expected, _ = reference
    out = tmp_path / "out"
    killed = run_cli(*predict_args(source, out, *extra), env={"VIRNUCPRO_SIGNAL_AT": "overlap:translate:KILL"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()
    work = out / "work"
    # Killed in the overlap: a shard embedded, translate unfinished, no score nor table (ESM-2 may
    # have begun the first shard: both models share the queue).
    assert list((work / "features").glob("*.dnabert.safetensors.done"))
    assert not (work / "translate.json.done").exists()
    assert not (work / "scores").exists()
    assert not (out / "prediction_results.txt").exists()

    again = run_cli(*predict_args(source, out, *extra))
    assert again.returncode == 0, again.stderr.decode()
    assert {name: (out / name).read_bytes() for name in RESULTS} == expected
    assert re.search(r"dnabert: reusing [1-9]\d* verified shard\(s\)", (out / "virnucpro.log").read_text())


def test_sigterm_while_translate_and_dnabert_overlap_then_resume(tmp_path, reference) -> None:
    source, expected, _ = reference
    out = tmp_path / "out"
    stopped = run_cli(*predict_args(source, out), env={"VIRNUCPRO_SIGNAL_AT": "overlap:translate"})
    err = stopped.stderr.decode()
    assert stopped.returncode == 143, err
    assert "Traceback" not in err and "finished work is kept" in err
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["status"] == "interrupted"
    assert summary["stages"]["dnabert"]["computed_shards"] >= 1
    assert "score" not in summary["stages"] or summary["stages"]["score"]["computed_shards"] == 0

    again = run_cli(*predict_args(source, out))
    assert again.returncode == 0, again.stderr.decode()
    assert {name: (out / name).read_bytes() for name in RESULTS} == expected
