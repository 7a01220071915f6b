"""Runs that survive being killed: workers, SIGKILL at random moments, corruption, changed settings."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, run_cli
from tests.helpers.published import assert_chunk_calls_match, assert_predictions_match
from tests.integration.test_predict_fixture import fixture_args

# End-to-end runs in subprocesses: part of `make test`, not of `make test-fast`.
pytestmark = pytest.mark.slow

RESULT_FILES = ("prediction_results.txt", "prediction_results_highestscore.csv", "contig_summary.tsv")


def results_of(out: Path) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in RESULT_FILES}


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("VIRNUCPRO_CACHE", str(REPO_ROOT / ".pytest_cache" / "virnucpro-cache"))
    return env


def start_cli(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "virnucpro", *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env or cli_env(), start_new_session=True,
    )


def verified_markers(out: Path) -> dict[Path, int]:
    """Every result whose marker verifies now, with the marker's mtime (to detect recomputation)."""
    from virnucpro.pipeline.checkpoint import read_done, verify_done

    found = {}
    for marker in out.glob("work/**/*.done"):
        result = marker.with_suffix("")
        data = read_done(result)
        if data and verify_done(result, data["identity"], use_cache=False):
            found[marker] = marker.stat().st_mtime_ns
    return found


REFERENCE_DIR: list[Path] = []


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, bytes]:
    out = tmp_path_factory.mktemp("reference") / "out"
    result = run_cli(*fixture_args(out, "--shard-size", "40"))
    assert result.returncode == 0, result.stderr.decode()
    REFERENCE_DIR[:] = [out]
    return results_of(out)


@pytest.fixture(scope="module")
def reference_two_workers(tmp_path_factory) -> dict[str, bytes]:
    """An uninterrupted ``--workers 2`` run: its last shards are cut smaller (the tail split), so its
    batches, and the last digits of its scores, differ from the one-worker reference's."""
    out = tmp_path_factory.mktemp("reference-w2") / "out"
    result = run_cli(*fixture_args(out, "--shard-size", "40", "--workers", "2"))
    assert result.returncode == 0, result.stderr.decode()
    return results_of(out)


def test_cpu_workers_match_single_process(tmp_path, reference):
    out = tmp_path / "out"
    result = run_cli(*fixture_args(out, "--shard-size", "40", "--workers", "1"))
    assert result.returncode == 0, result.stderr.decode()
    assert results_of(out) == reference


def test_two_cpu_workers_match_single_process_within_spec_9(tmp_path, reference, reference_two_workers):
    """Two workers cut a smaller tail (other shards, other batches): the tables agree within SPEC 9."""
    out = tmp_path / "out"
    result = run_cli(*fixture_args(out, "--shard-size", "40", "--workers", "2"))
    assert result.returncode == 0, result.stderr.decode()
    assert results_of(out) == reference_two_workers  # the same cut gives the same bytes
    assert_predictions_match(out / "prediction_results.txt", REFERENCE_DIR[0] / "prediction_results.txt", tol=1e-6)
    assert_chunk_calls_match(out / "prediction_results_highestscore.csv",
                             REFERENCE_DIR[0] / "prediction_results_highestscore.csv",
                             REFERENCE_DIR[0] / "prediction_results.txt")


def test_sigkill_at_random_moments_then_resume(tmp_path, reference_two_workers):
    out = tmp_path / "out"
    args = fixture_args(out, "--shard-size", "40", "--workers", "2")
    rng = random.Random(20261122)
    for _trial in range(4):
        proc = start_cli(args)
        time.sleep(rng.uniform(1.5, 6.0))
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        if proc.returncode == 0:
            break  # finished before the kill: nothing left to interrupt
    before = verified_markers(out)
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr.decode()
    assert results_of(out) == reference_two_workers
    for marker, mtime in before.items():
        if marker.exists():  # features are removed after success; every surviving marker was kept
            assert marker.stat().st_mtime_ns == mtime, f"{marker} was recomputed although it verified"
    log = (out / "virnucpro.log").read_text()
    assert "reusing" in log or not before


@pytest.mark.parametrize("crash_at", [2, 9, 25, 60])
def test_killed_just_before_a_rename(tmp_path, reference, crash_at):
    out = tmp_path / "out"
    args = fixture_args(out, "--shard-size", "40")
    env = cli_env() | {"VIRNUCPRO_CRASH_BEFORE_RENAME": str(crash_at)}
    crashed = subprocess.run([sys.executable, "-m", "virnucpro", *args], env=env, capture_output=True, timeout=600)
    assert crashed.returncode == -signal.SIGKILL
    leftovers = [p for p in out.rglob("*") if ".tmp-" in p.name]
    assert leftovers, "the crash should leave a complete temp file that was never renamed"
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr.decode()
    assert results_of(out) == reference
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name]


def test_corrupted_shard_is_recomputed_alone(tmp_path, reference):
    out = tmp_path / "out"
    args = fixture_args(out, "--shard-size", "40")
    assert run_cli(*args).returncode == 0
    victim = out / "work" / "scores" / "shard-00003.tsv"
    victim.write_bytes(victim.read_bytes()[:-25])  # truncated
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr.decode()
    assert results_of(out) == reference
    stages = json.loads((out / "run_summary.json").read_text())["stages"]
    assert stages["dnabert"]["computed_shards"] == 1
    assert stages["esm"]["computed_shards"] == 1
    assert stages["score"]["computed_shards"] == 1
    assert stages["score"]["reused_shards"] == 10


def test_changed_settings_are_refused_until_force(tmp_path, reference):
    out = tmp_path / "out"
    assert run_cli(*fixture_args(out, "--shard-size", "40")).returncode == 0
    refused = run_cli(*fixture_args(out, "--shard-size", "40", "-c", "300"))
    assert refused.returncode == 2
    stderr = refused.stderr.decode()
    errors = [line for line in stderr.splitlines() if line.startswith("virnucpro: error:")]
    assert len(errors) == 1 and stderr.strip().splitlines()[-1] == errors[0]
    assert "--chunk-length: 500 -> 300" in errors[0] and "--force" in errors[0]
    assert "Traceback" not in stderr
    assert results_of(out) == reference  # untouched
    forced = run_cli(*fixture_args(out, "--shard-size", "40", "-c", "300", "--force"))
    assert forced.returncode == 0, forced.stderr.decode()
    assert results_of(out) != reference


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signals_stop_workers_quickly(tmp_path, reference, signum):
    out = tmp_path / "out"
    args = fixture_args(out, "--shard-size", "20", "--workers", "2", "--batch-tokens", "64")
    proc = start_cli(args)
    deadline = time.monotonic() + 120
    while not list(out.glob("work/features/*.done")) and time.monotonic() < deadline:
        time.sleep(0.2)
    os.kill(proc.pid, signum)
    started = time.monotonic()
    proc.wait(timeout=30)
    assert time.monotonic() - started < 15
    assert proc.returncode == (143 if signum == signal.SIGTERM else 130), proc.stderr.read().decode()
    survivors: list[str] = []
    for _ in range(50):  # workers and multiprocessing's helper must be gone within seconds
        survivors = subprocess.run(["pgrep", "-a", "-s", str(proc.pid)], capture_output=True, text=True).stdout.splitlines()
        if not survivors:
            break
        time.sleep(0.1)
    assert not survivors
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr.decode()
    # Other shard size and batch budget than the reference: equal within the batching tolerance.
    assert_predictions_match(out / "prediction_results.txt", REFERENCE_DIR[0] / "prediction_results.txt", tol=1e-6)


def test_second_run_on_same_directory_is_refused(tmp_path):
    out = tmp_path / "out"
    proc = start_cli(fixture_args(out, "--shard-size", "40"))
    try:
        deadline = time.monotonic() + 60
        while not (out / ".virnucpro.lock").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        second = run_cli(*fixture_args(out, "--shard-size", "40"))
        assert second.returncode == 6  # errors.EXIT_DIR_BUSY
        assert "another virnucpro run is using" in second.stderr.decode()
    finally:
        proc.wait(timeout=600)
    assert proc.returncode == 0


def test_workers_that_keep_dying_end_with_exit_5_and_keep_finished_shards(tmp_path, reference_two_workers):
    """Each worker process is killed at its 3rd rename (after one finished shard), again after
    every restart: the run makes progress, runs out of restarts, exits 5 naming the failed
    shards, keeps what finished; a plain re-run completes it identically."""
    out = tmp_path / "out"
    args = fixture_args(out, "--shard-size", "40", "--workers", "2")
    env = cli_env() | {"VIRNUCPRO_CRASH_BEFORE_RENAME": "worker:3"}
    crashed = subprocess.run([sys.executable, "-m", "virnucpro", *args], env=env, capture_output=True, timeout=600)
    assert crashed.returncode == 5, crashed.stderr.decode()
    stderr = crashed.stderr.decode()
    assert "Traceback" not in stderr
    error = [line for line in stderr.splitlines() if line.startswith("virnucpro: error:")]
    assert len(error) == 1 and "failed (shard-" in error[0] and "re-run" in error[0]
    kept = verified_markers(out)
    assert any("features" in str(marker) for marker in kept)
    summary = json.loads((out / "run_summary.json").read_text())
    assert (summary["status"], summary["exit_code"]) == ("failed", 5)
    assert "failed (shard-" in summary["error"]
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr.decode()
    assert results_of(out) == reference_two_workers
    assert json.loads((out / "run_summary.json").read_text())["status"] == "ok"
    for marker, mtime in kept.items():
        if marker.exists():
            assert marker.stat().st_mtime_ns == mtime


def test_rerunning_a_finished_run_keeps_the_verified_shard_index(tmp_path):
    # A finished run removes its shard files; the re-run re-makes them but must not rewrite
    # the verified translate index (the kill-at-random test breaks out when a trial finishes).
    out = tmp_path / "out"
    args = fixture_args(out, "--shard-size", "40")
    assert run_cli(*args).returncode == 0
    marker = out / "work" / "translate.json.done"
    mtime = marker.stat().st_mtime_ns
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr.decode()
    assert marker.stat().st_mtime_ns == mtime
