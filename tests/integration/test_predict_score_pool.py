"""``predict --score-workers N``: shards scored in pool processes while ESM-2 runs give the same
tables as scoring them in the main process, survive a pool process killed mid-run, and a stop
signal leaves no process behind. Real runs on the demo models; the faults are real signals.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import TINY_REF, run_cli

pytestmark = pytest.mark.slow

RESULTS = ("prediction_results.txt", "prediction_results_highestscore.csv", "contig_summary.tsv",
           "chunk_scores.tsv")
RECORDS = 40
SHARD_SIZE = "8"


def first_records(directory: Path, records: int = RECORDS) -> Path:
    """The first ``records`` records of the fixture contigs."""
    path = directory / "input.fa"
    lines, seen = [], 0
    for line in (TINY_REF / "contigs.fa").read_text().splitlines():
        if line.startswith(">"):
            seen += 1
            if seen > records:
                break
        lines.append(line)
    path.write_text("\n".join(lines) + "\n")
    return path


def predict(source: Path, out: Path, *extra: str, env: dict | None = None):
    return run_cli("predict", str(source), "-o", str(out), "--models", "demo", "--device", "cpu",
                   "--no-dashboard", "--shard-size", SHARD_SIZE, *extra, env=env)


def tables(out: Path) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in RESULTS}


def scored_lines(out: Path) -> dict[str, int]:
    """How often the log says each shard was scored (by the pool or in the main process)."""
    counts: dict[str, int] = {}
    for match in re.finditer(r"score: (shard-\d+) scored (?:by the pool|in this process)",
                             (out / "virnucpro.log").read_text()):
        counts[match.group(1)] = counts.get(match.group(1), 0) + 1
    return counts


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, dict[str, bytes], dict]:
    """The input, the tables scored in the main process (--score-workers 0) and that run's summary."""
    directory = tmp_path_factory.mktemp("score-pool-reference")
    source = first_records(directory)
    out = directory / "out"
    result = predict(source, out, "--score-workers", "0")
    assert result.returncode == 0, result.stderr.decode()
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["stages"]["score"]["workers"] == 0 and summary["counts"]["shards"] >= 4
    return source, tables(out), summary


def assert_every_shard_scored_once(out: Path, summary: dict, reference_summary: dict) -> None:
    shards, frames = reference_summary["counts"]["shards"], reference_summary["counts"]["kept_frames"]
    score = summary["stages"]["score"]
    assert (score["computed_shards"], score["frames"]) == (shards, frames), score
    assert scored_lines(out) == {f"shard-{i:05d}": 1 for i in range(1, shards + 1)}


def test_pool_scores_equal_main_process_scores_and_overlap_esm(tmp_path, reference):
    source, expected, reference_summary = reference
    out = tmp_path / "out"
    result = predict(source, out, "--score-workers", "1", "--keep-features")
    assert result.returncode == 0, result.stderr.decode()
    assert tables(out) == expected
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["stages"]["score"]["workers"] == 1
    assert_every_shard_scored_once(out, summary, reference_summary)
    assert "workers" not in summary["stages"]["esm"]

    # Overlap: a shard went to the pool as soon as its ESM-2 task finished, before the last one
    # finished. (When the pool then finishes it depends on the machine's load: not asserted.)
    log = (out / "virnucpro.log").read_text()
    esm_finished = [m.start() for m in re.finditer(r"task shard-\d+:esm finished on", log)]
    assert len(esm_finished) > 1
    first_submitted = re.search(r"score: shard-\d+ submitted to the pool", log)
    assert first_submitted is not None and first_submitted.start() < esm_finished[-1]


def test_two_pool_processes_give_identical_tables(tmp_path, reference):
    source, expected, reference_summary = reference
    out = tmp_path / "out"
    result = predict(source, out, "--score-workers", "2")
    assert result.returncode == 0, result.stderr.decode()
    assert tables(out) == expected
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["stages"]["score"]["workers"] == 2
    assert_every_shard_scored_once(out, summary, reference_summary)


def test_a_pool_process_killed_mid_run_loses_nothing(tmp_path, reference):
    """SIGKILL (as the OOM killer sends) on a pool process's second job: a warning, the main
    process scores what the pool did not finish, every shard exactly once, identical tables."""
    source, expected, reference_summary = reference
    out = tmp_path / "out"
    result = predict(source, out, "--score-workers", "2", env={"VIRNUCPRO_FAULT_SCORE_KILL": "2"})
    err = result.stderr.decode()
    assert result.returncode == 0, err
    assert "score pool: a pool process died" in err and "Traceback" not in err
    assert tables(out) == expected
    summary = json.loads((out / "run_summary.json").read_text())
    assert_every_shard_scored_once(out, summary, reference_summary)
    assert "scored in this process" in (out / "virnucpro.log").read_text()


def processes_tagged(tag: str) -> list[int]:
    """Live processes whose environment holds ``tag`` (the run and every process it started)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if tag.encode() in environ and state != "Z":
            found.append(int(entry.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")
def test_sigint_while_scoring_leaves_no_process_and_a_rerun_finishes(tmp_path, reference):
    source, expected, _ = reference
    out = tmp_path / "out"
    tag = f"VIRNUCPRO_TEST_TAG=score-pool-{uuid.uuid4().hex}"
    name, value = tag.split("=", 1)
    # SIGINT as ESM-2's last shard finishes: the pool still has shards to score.
    stopped = predict(source, out, "--score-workers", "2",
                      env={"VIRNUCPRO_SIGNAL_AT": "last:esm:INT", name: value})
    err = stopped.stderr.decode()
    assert stopped.returncode == 130, err
    assert "Traceback" not in err and "finished work is kept" in err
    deadline = time.monotonic() + 10
    while processes_tagged(tag) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert processes_tagged(tag) == []
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["status"] == "interrupted"
    scored = summary["stages"].get("score", {"computed_shards": 0})["computed_shards"]
    assert scored == sum(scored_lines(out).values())  # the summary tells what was scored
    assert not (out / "prediction_results.txt").exists()

    again = predict(source, out, "--score-workers", "2")
    assert again.returncode == 0, again.stderr.decode()
    assert tables(out) == expected
