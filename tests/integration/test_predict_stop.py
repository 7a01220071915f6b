"""A stop signal at every stage boundary ends the run with its exit code, starts no further
stage, leaves a truthful run_summary.json, and a re-run finishes byte-identically.

The signal is real: ``VIRNUCPRO_SIGNAL_AT`` makes the run send it to itself at the named
boundary (see ``virnucpro.pipeline.run.stop``); nothing is mocked.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import TINY_REF, run_cli

RESULTS = ("prediction_results.txt", "prediction_results_highestscore.csv", "contig_summary.tsv")
RECORDS = 12  # 30 kept frames: three shards of 10


def small_input(directory: Path) -> Path:
    """The first records of the fixture contigs (a run of a few seconds on the demo models)."""
    path = directory / "small.fa"
    lines, records = [], 0
    for line in (TINY_REF / "contigs.fa").read_text().splitlines():
        if line.startswith(">"):
            records += 1
            if records > RECORDS:
                break
        lines.append(line)
    path.write_text("\n".join(lines) + "\n")
    return path


def predict_args(source: Path, out: Path, *extra: str) -> list[str]:
    return ["predict", str(source), "-o", str(out), "--models", "demo", "--device", "cpu",
            "--no-dashboard", "--shard-size", "10", *extra]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, dict[str, bytes]]:
    directory = tmp_path_factory.mktemp("stop-reference")
    source = small_input(directory)
    out = directory / "out"
    result = run_cli(*predict_args(source, out))
    assert result.returncode == 0, result.stderr.decode()
    return source, {name: (out / name).read_bytes() for name in RESULTS}


def log_of(out: Path) -> str:
    return (out / "virnucpro.log").read_text()


def assert_not_started(out: Path, boundary: str) -> None:
    """Nothing of the stages after ``boundary`` ran."""
    log = log_of(out)
    features = out / "work" / "features"
    # Both models embed shards on one queue while they are translated (stages/stream.py):
    # after:translate and last:dnabert may find shards of both done; after:dnabert and after:esm
    # are one boundary (the queue returned). No later stage ever started.
    assert "embed: DNABERT-S+ESM-2" in log
    if boundary in ("after:dnabert", "after:esm"):
        assert len(list(features.glob("*.esm.safetensors.done"))) == 3
    if boundary in ("after:translate", "after:dnabert", "last:dnabert", "after:esm"):
        assert not (out / "work" / "scores").exists()
    if boundary != "during:assemble":
        assert not (out / "prediction_results.txt").exists()
        assert not (out / "contig_summary.tsv").exists()
    else:  # the walk in input order writes three tables at once; the highest-score merge follows
        assert (out / "prediction_results.txt").exists() and (out / "contig_summary.tsv").exists()
        assert not (out / "prediction_results_highestscore.csv").exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("boundary", "extra", "code"),
    [
        ("after:translate", (), 143),
        ("after:dnabert", (), 143),
        ("last:dnabert", ("--workers", "2"), 143),  # recorded by the queue as its last shard finished
        ("after:esm:INT", (), 130),
        ("after:score", (), 143),
        ("during:assemble", (), 143),
    ],
)
def test_a_signal_at_a_stage_boundary_stops_the_run(tmp_path, reference, boundary, extra, code):
    source, expected = reference
    out = tmp_path / "out"
    stopped = run_cli(*predict_args(source, out, *extra), env={"VIRNUCPRO_SIGNAL_AT": boundary})
    err = stopped.stderr.decode()
    assert stopped.returncode == code, err
    assert "Traceback" not in err and "finished work is kept" in err
    where = boundary.removesuffix(":INT")
    assert_not_started(out, where)

    summary = json.loads((out / "run_summary.json").read_text())
    assert (summary["status"], summary["exit_code"]) == ("interrupted", code)
    if where != "during:assemble":
        assert summary["counts"]["frames_virus"] is None and summary["counts"]["virus_chunks"] is None
        assert summary["outputs"]["predictions"] is None
    for key in ("predictions", "highest_score", "contig_summary", "log"):
        name = summary["outputs"][key]
        assert name is None or (out / name).is_file()
    if where in ("after:esm", "after:score", "during:assemble"):
        for stage in ("dnabert", "esm"):
            report = summary["stages"][stage]
            assert (report["computed_shards"], report["frames"]) == (3, 30), report

    again = run_cli(*predict_args(source, out, *extra))
    assert again.returncode == 0, again.stderr.decode()
    assert {name: (out / name).read_bytes() for name in RESULTS} == expected


@pytest.mark.slow
def test_interrupted_summary_counts_the_shards_a_stage_finished(tmp_path, reference):
    """As the last DNABERT-S shard finishes the queue stops (ESM-2 shares it): the summary says 3
    shards, 30 frames of DNABERT-S, what ESM-2 finished by then, and nothing scored."""
    source, _ = reference
    out = tmp_path / "out"
    stopped = run_cli(*predict_args(source, out), env={"VIRNUCPRO_SIGNAL_AT": "last:dnabert"})
    assert stopped.returncode == 143, stopped.stderr.decode()
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["stages"]["dnabert"]["computed_shards"] == 3
    assert summary["stages"]["dnabert"]["frames"] == 30
    esm_done = len(list((out / "work" / "features").glob("*.esm.safetensors.done")))
    assert summary["stages"]["esm"]["computed_shards"] == esm_done
    assert "score" not in summary["stages"]
