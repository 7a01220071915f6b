"""What ``predict`` checks before it touches anything, what ``--force`` removes, what is kept,
and input from a named pipe. Every run is a real CLI subprocess on the demo or fixture models."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import threading
from pathlib import Path

import pytest

from tests.conftest import one_error_line, run_cli
from tests.integration.test_predict_fixture import MODELS
from tests.integration.test_predict_stop import RESULTS, predict_args, small_input

FORCE_LINE = "--force: removed"


def results_of(out: Path) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in RESULTS}


def snapshot(out: Path) -> dict[str, bytes]:
    """Every file of ``out`` but the log (which records each attempt) and the lock file."""
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and p.name not in ("virnucpro.log", ".virnucpro.lock")}


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    return small_input(tmp_path_factory.mktemp("checks-input"))


@pytest.fixture(scope="module")
def finished(tmp_path_factory, source) -> Path:
    """A finished demo run with kept features and their export (copied by the tests that change it)."""
    out = tmp_path_factory.mktemp("checks-run") / "out"
    result = run_cli(*predict_args(source, out, "--keep-features"))
    assert result.returncode == 0, result.stderr.decode()
    exported = run_cli("features", "export", str(out))
    assert exported.returncode == 0, exported.stderr.decode()
    return out


def copy_run(finished: Path, tmp_path: Path) -> Path:
    out = tmp_path / "out"
    shutil.copytree(finished, out)
    return out


def bad_inputs(directory: Path, source: Path) -> dict[str, Path]:
    good = source.read_text()
    cases = {
        "protein": ">p\n" + "MKVLAAGIVGLLLAQWERTYIPASDFGHKLCVNM" * 3 + "\n",
        "truncated fastq": "@r1\nACGTACGT\n+\nIIII\n",
        "empty": "",
        "deep protein record": good + ">late\n" + "MKVLAAGIVGLLLAQWERTYIPASDFGHKLCVNM" * 3 + "\n",
        "deep bad character": good + ">late\nACGTACGT*ACGTACGT\n",
    }
    paths = {}
    for name, text in cases.items():
        path = directory / (name.replace(" ", "_") + ".fa")
        path.write_text(text)
        paths[name] = path
    return paths


@pytest.mark.slow
def test_force_with_a_bad_input_or_option_changes_nothing(tmp_path, finished, source):
    out = copy_run(finished, tmp_path)
    before = snapshot(out)
    assert (out / "features" / "esm_embeddings.npy").is_file() and (out / "NOTICE.txt").is_file()
    for name, bad in bad_inputs(tmp_path, source).items():
        result = run_cli(*predict_args(bad, out, "--force"))
        assert result.returncode == 3, (name, result.stderr.decode())
        assert bad.name in one_error_line(result.stderr), name
        assert FORCE_LINE not in result.stderr.decode(), name
        assert snapshot(out) == before, name
    for option in (["-c", "10"], ["--keep-features", "--discard-features"]):
        result = run_cli(*predict_args(source, out, "--force", *option))
        assert result.returncode == 2, (option, result.stderr.decode())
        assert snapshot(out) == before, option


@pytest.mark.slow
def test_force_removes_what_it_made_stale_once_and_nothing_else(tmp_path, finished, source):
    out = copy_run(finished, tmp_path)
    (out / "notes.txt").write_text("mine\n")
    (out / "features" / "mine.txt").write_text("mine too\n")
    # Real (fixture) models this time: the demo run's NOTICE.txt no longer applies.
    result = run_cli(
        "predict", str(source), "-o", str(out), "--esm-model", str(MODELS / "esm2_t36_tiny.pt"),
        "--dnabert-model", str(MODELS / "dnabert_tiny"), "--model-path", str(MODELS / "classifier_tiny.pth"),
        "--precision", "fp32", "--device", "cpu", "--offline", "--no-dashboard", "--shard-size", "10", "--force",
    )
    err = result.stderr.decode()
    assert result.returncode == 0, err
    assert err.count(FORCE_LINE) == 1, err
    assert not (out / "NOTICE.txt").exists()
    assert not list((out / "features").glob("*_embeddings.*")) and not list((out / "features").glob("*_ids.txt"))
    assert (out / "notes.txt").read_text() == "mine\n"
    assert (out / "features" / "mine.txt").read_text() == "mine too\n"
    assert not (out / "work" / "features").exists()  # kept features of the forced run went with it
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["notice"] is None and summary["status"] == "ok"


@pytest.mark.slow
def test_no_force_line_without_removal(tmp_path, source):
    bad = bad_inputs(tmp_path, source)["deep protein record"]
    for extra in ((), ("--force",)):
        result = run_cli(*predict_args(bad, tmp_path / "fresh", *extra))
        assert result.returncode == 3
        assert FORCE_LINE not in result.stderr.decode()
    good = run_cli(*predict_args(source, tmp_path / "fresh2", "--force"))
    assert good.returncode == 0, good.stderr.decode()
    assert FORCE_LINE not in good.stderr.decode()  # nothing was there to remove


@pytest.mark.slow
def test_the_whole_input_is_checked_before_any_model_is_looked_at(tmp_path, source):
    absent = tmp_path / "nowhere"
    model_args = ["--esm-model", str(absent / "esm.pt"), "--dnabert-model", str(absent / "dnabert"),
                  "--model-path", str(absent / "classifier.pth"), "--offline", "--no-dashboard"]
    for name, bad in bad_inputs(tmp_path, source).items():
        out = tmp_path / f"out-{bad.stem}"
        result = run_cli("predict", str(bad), "-o", str(out), *model_args)
        assert result.returncode == 3, (name, result.stderr.decode())
        line = one_error_line(result.stderr)
        assert bad.name in line and "nowhere" not in result.stderr.decode(), (name, line)
        assert not out.exists(), name  # not even the output directory
    # The same models with a good input: they are looked at, and missing.
    result = run_cli("predict", str(source), "-o", str(tmp_path / "good"), *model_args)
    assert result.returncode == 4 and "nowhere" in one_error_line(result.stderr)


@pytest.mark.slow
def test_gzip_input_is_checked_whole_too(tmp_path, source):
    bad = tmp_path / "bad.fa.gz"
    bad.write_bytes(gzip.compress((source.read_text() + ">late\nACGT*ACGT\n").encode()))
    result = run_cli("predict", str(bad), "-o", str(tmp_path / "out"), "--model-path", str(tmp_path / "absent.pth"),
                     "--offline")
    assert result.returncode == 3 and "'late'" in one_error_line(result.stderr)


@pytest.mark.slow
def test_short_chunk_length_is_refused_unless_allowed(tmp_path, source):
    out = tmp_path / "out"
    result = run_cli(*predict_args(source, out, "-c", "10"))
    assert result.returncode == 2
    line = one_error_line(result.stderr)
    assert "--chunk-length 10" in line and "--allow-chunk-length" in line
    assert not out.exists()


@pytest.mark.slow
def test_chunk_length_other_than_the_classifiers_is_warned_about(tmp_path, source):
    env = {"VIRNUCPRO_CACHE": str(tmp_path / "empty-cache"), "TORCH_HOME": str(tmp_path / "torch"),
           "HF_HOME": str(tmp_path / "hf")}
    result = run_cli("predict", str(source), "-o", str(tmp_path / "out"), "-c", "300", "--offline", env=env)
    err = result.stderr.decode()
    assert "--chunk-length 300 differs from the 500-bp chunks the 500 classifier was trained on" in err
    assert result.returncode == 4  # the published models are not cached here; the warning came first


@pytest.mark.slow
def test_kept_features_survive_a_run_without_the_flag(tmp_path, finished, source):
    out = copy_run(finished, tmp_path)
    kept = sorted(p.name for p in (out / "work" / "features").glob("*.safetensors"))
    assert len(kept) == 6
    again = run_cli(*predict_args(source, out))
    assert again.returncode == 0, again.stderr.decode()
    assert sorted(p.name for p in (out / "work" / "features").glob("*.safetensors")) == kept
    assert "kept 6 feature file(s)" in again.stderr.decode() and "--discard-features" in again.stderr.decode()
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["outputs"]["features"] is not None
    discarded = run_cli(*predict_args(source, out, "--discard-features"))
    assert discarded.returncode == 0, discarded.stderr.decode()
    assert "--discard-features: removed 6 kept feature file(s)" in discarded.stderr.decode()
    assert not (out / "work" / "features").exists()
    assert results_of(out) == results_of(finished)


@pytest.mark.slow
def test_changed_settings_are_named_in_one_line(tmp_path, finished, source):
    out = copy_run(finished, tmp_path)
    result = run_cli(*predict_args(source, out, "-c", "300"))
    assert result.returncode == 2
    line = one_error_line(result.stderr)
    assert "--chunk-length: 500 -> 300" in line and "--force" in line
    assert "{" not in line and "sha256" not in line


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_named_pipe_input_is_a_stream(tmp_path, finished, source):
    fifo = tmp_path / "input.fifo"
    os.mkfifo(fifo)

    def feed() -> None:
        with open(fifo, "wb") as pipe:
            pipe.write(source.read_bytes())

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    out = tmp_path / "out"
    result = run_cli(*predict_args(fifo, out))
    writer.join(timeout=10)
    err = result.stderr.decode()
    assert result.returncode == 0, err
    assert "is a stream: it is read once, so this run cannot be resumed" in err
    assert results_of(out) == results_of(finished)
    assert json.loads((out / "run.json").read_text())["params"]["input_sha256"] is None
