"""The tail split end to end (issue 26): ``predict --workers 2`` cuts its last shards smaller, gives
the tables of ``--workers 1`` within SPEC 9, and re-cuts exactly the same shards when it is
killed and resumed (on other devices too); a run recorded without a tail split stays without."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from tests.conftest import TINY_REF, run_cli
from tests.helpers.published import assert_chunk_calls_match, assert_predictions_match
from tests.integration.test_predict_resume import verified_markers

pytestmark = pytest.mark.slow

CONTIGS = TINY_REF / "contigs.fa"  # 433 kept frames in 432 chunks of 500 bp
SHARD_SIZE = 60
TAIL_MIN = -(-4096 // 168)  # one ESM-2 CPU batch (esm2.CPU_BATCH_TOKENS) of 168-token frames


def _predict(out: Path, *extra: str, env: dict | None = None):
    return run_cli("predict", str(CONTIGS), "-o", str(out), "--models", "demo", "--no-dashboard",
                   "--shard-size", str(SHARD_SIZE), *extra, env=env)


def _shard_sizes(out: Path) -> list[int]:
    return [s["frames"] for s in json.loads((out / "work" / "translate.json").read_text())["shards"]]


def _summary(out: Path) -> dict:
    return json.loads((out / "run_summary.json").read_text())


@pytest.fixture(scope="module")
def one_worker(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("w1") / "out"
    result = _predict(out, "--workers", "1")
    assert result.returncode == 0, result.stderr.decode()
    return out


def test_two_workers_cut_a_smaller_tail_and_agree_with_one_worker(tmp_path, one_worker):
    assert _shard_sizes(one_worker) == [60] * 7 + [13]  # one worker: today's cut
    assert "tail" not in json.loads((one_worker / "run.json").read_text())["params"]

    out = tmp_path / "w2"
    result = _predict(out, "--workers", "2")
    assert result.returncode == 0, result.stderr.decode()
    sizes = _shard_sizes(out)
    assert sum(sizes) == 433 and max(sizes) == SHARD_SIZE
    assert sizes[:4] == [SHARD_SIZE] * 4 and sizes[-2] < SHARD_SIZE  # full shards, then a shrinking tail
    assert all(s >= TAIL_MIN for s in sizes[:-1]) and sizes[-1] <= TAIL_MIN
    assert all(a >= b for a, b in zip(sizes, sizes[1:]))
    tail = json.loads((out / "run.json").read_text())["params"]["tail"]
    assert tail == {"workers": 2, "min_frames": TAIL_MIN, "chunks": 432}
    assert _summary(out)["stages"]["esm"]["computed_shards"] == len(sizes)

    # SPEC 9: other shards mean other batches; the same rows, scores within 1e-5, the same calls
    # (knife-edge frames and chunks of --workers 1 excepted).
    assert_predictions_match(out / "prediction_results.txt", one_worker / "prediction_results.txt")
    assert_chunk_calls_match(out / "prediction_results_highestscore.csv",
                             one_worker / "prediction_results_highestscore.csv",
                             one_worker / "prediction_results.txt")
    for name in ("contig_summary.tsv", "viral_regions.tsv"):
        assert (out / name).read_text().splitlines()[0] == (one_worker / name).read_text().splitlines()[0]
        assert len((out / name).read_text().splitlines()) == len((one_worker / name).read_text().splitlines())


def test_killed_midway_the_resume_recuts_the_same_shards_on_other_devices(tmp_path):
    full = tmp_path / "full"
    assert _predict(full, "--workers", "2").returncode == 0
    out = tmp_path / "killed"
    # SIGKILL once the first shard is embedded, before translate writes the next one
    killed = _predict(out, "--workers", "2", env={"VIRNUCPRO_SIGNAL_AT": "overlap:translate:KILL"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()
    assert not (out / "work" / "translate.json").exists()
    before = verified_markers(out)
    assert any("shard-00001" in m.name for m in before)

    resumed = _predict(out, "--workers", "1")  # another device plan: the recorded tail plan is kept
    err = resumed.stderr.decode()
    assert resumed.returncode == 0, err
    assert "differ" not in err
    assert _shard_sizes(out) == _shard_sizes(full)
    assert (out / "work" / "translate.json").read_bytes() == (full / "work" / "translate.json").read_bytes()
    for marker, mtime in before.items():
        if marker.exists():
            assert marker.stat().st_mtime_ns == mtime, f"{marker} was redone although it verified"
    for name in ("prediction_results.txt", "prediction_results_highestscore.csv", "contig_summary.tsv"):
        assert (out / name).read_bytes() == (full / name).read_bytes()

    # The finished run removed its shard files; a re-run (its input check skipped: no chunk count)
    # re-makes the same shards from the recorded plan, and every shard's scores verify.
    again = _predict(out, "--workers", "2")
    assert again.returncode == 0, again.stderr.decode()
    summary = _summary(out)
    assert summary["stages"]["score"]["computed_shards"] == 0
    assert summary["stages"]["esm"]["computed_shards"] == summary["stages"]["dnabert"]["computed_shards"] == 0
    assert (out / "work" / "translate.json").read_bytes() == (full / "work" / "translate.json").read_bytes()


def test_a_run_recorded_without_a_tail_split_resumes_as_it_was_cut(tmp_path, one_worker):
    """A run.json without ``tail`` (one worker, or written before the tail split) resumes on two
    workers with no "settings differ", every shard reused as it was cut."""
    import shutil

    out = tmp_path / "out"
    shutil.copytree(one_worker, out)
    params = json.loads((out / "run.json").read_text())["params"]
    assert "tail" not in params
    resumed = _predict(out, "--workers", "2")
    err = resumed.stderr.decode()
    assert resumed.returncode == 0, err
    assert "differ" not in err
    assert json.loads((out / "run.json").read_text())["params"] == params
    assert _shard_sizes(out) == [60] * 7 + [13]
    assert _summary(out)["stages"]["score"]["computed_shards"] == 0
    for name in ("prediction_results.txt", "prediction_results_highestscore.csv", "contig_summary.tsv"):
        assert (out / name).read_bytes() == (one_worker / name).read_bytes()


def test_a_lower_min_length_re_makes_the_cut_group_identically_and_cuts_the_new_one(tmp_path):
    """Two length groups, each with its own tail: lowering --min-length re-reads the input and
    re-makes the first group's shards; with the tail split they must come out the same, so their
    scores are reused and only the new group is embedded."""
    out = tmp_path / "out"
    first = _predict(out, "--workers", "2", "--min-length", "1000")
    assert first.returncode == 0, first.stderr.decode()
    index = json.loads((out / "work" / "translate.json").read_text())["shards"]
    assert index[-2]["frames"] < SHARD_SIZE  # the group was cut with a tail
    lower = _predict(out, "--workers", "2", "--min-length", "0")
    assert lower.returncode == 0, lower.stderr.decode()
    after = json.loads((out / "work" / "translate.json").read_text())["shards"]
    assert after[:len(index)] == index  # the first group's shards, numbered and cut as before
    added = after[len(index):]
    assert added and all(s["min_length"] == 0 and s["below"] == 1000 for s in added)
    assert added[-2]["frames"] < SHARD_SIZE and max(s["frames"] for s in added) <= SHARD_SIZE
    summary = _summary(out)
    assert summary["stages"]["score"]["computed_shards"] == len(added)  # the old group's scores reused
    assert sum(s["frames"] for s in after) == 433
