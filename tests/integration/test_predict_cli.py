"""`virnucpro predict` through the CLI: the demo run, and every user error as one line with its exit code."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest

from tests.conftest import TINY_REF, one_error_line, run_cli
from tests.integration.test_predict_fixture import fixture_args

# End-to-end runs in subprocesses: part of `make test`, not of `make test-fast`.
pytestmark = pytest.mark.slow

RESULTS = ("prediction_results.txt", "prediction_results_highestscore.csv", "contig_summary.tsv",
           "chunk_scores.tsv", "viral_contigs.fa")
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "example_contigs.fa"


def no_results(out: Path) -> bool:
    return not any((out / name).exists() for name in RESULTS) and not (out / "run.json").exists()


def test_demo_run_writes_every_output_with_a_notice(tmp_path):
    out = tmp_path / "demo"
    result = run_cli("predict", str(EXAMPLE), "-o", str(out), "--models", "demo")
    assert result.returncode == 0, result.stderr.decode()
    for name in (*RESULTS, "run_summary.json", "virnucpro.log", "NOTICE.txt"):
        assert (out / name).is_file(), name
    assert "scores are meaningless" in (out / "NOTICE.txt").read_text()
    assert "scores are meaningless" in result.stderr.decode()
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["notice"] == "demo models: scores are meaningless"
    records = sum(1 for line in EXAMPLE.read_text().splitlines() if line.startswith(">"))
    assert summary["counts"]["sequences"] == records
    assert len((out / "contig_summary.tsv").read_text().splitlines()) == records + 1


@pytest.mark.slow
def test_stdin_run_has_no_viral_fasta_and_says_so(tmp_path):
    """stdin is read once, so the viral FASTA (a second pass over the input) cannot be made."""
    out = tmp_path / "stdin"
    result = run_cli("predict", "-", "-o", str(out), "--models", "demo", "--no-dashboard", "--min-score", "0.4",
                     input=EXAMPLE.read_bytes())
    assert result.returncode == 0, result.stderr.decode()
    stderr = result.stderr.decode()
    assert "no viral_contigs.fa: the input was a stream" in stderr
    assert not (out / "viral_contigs.fa").exists()
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["outputs"]["viral_fasta"] is None
    calls = summary["calls"]
    assert (calls["min_score"], calls["min_length"]) == (0.4, 0)
    assert calls["virus"] + calls["not_virus"] + calls["no_call"] == summary["counts"]["sequences"]
    last = stderr.strip().splitlines()[-1]
    assert f"{calls['virus']} of {summary['counts']['sequences_scored']} scored sequence(s) called virus at " \
           "--min-score 0.4; viral sequences: not written (stream input)" in last


@pytest.mark.parametrize(("option", "value"), [("--min-score", "1.5"), ("--min-score", "-0.1"), ("--min-length", "-1")])
def test_bad_thresholds_are_usage_errors(tmp_path, option, value):
    result = run_cli("predict", str(EXAMPLE), "-o", str(tmp_path / "out"), "--models", "demo", option, value)
    assert result.returncode == 2
    assert option in result.stderr.decode() and "Traceback" not in result.stderr.decode()
    assert not (tmp_path / "out").exists()


def test_missing_input_is_an_input_error(tmp_path):
    out = tmp_path / "out"
    result = run_cli("predict", str(tmp_path / "absent.fa"), "-o", str(out), "--models", "demo")
    assert result.returncode == 3
    assert "absent.fa: no such file" in one_error_line(result.stderr)
    assert no_results(out)


def test_bad_input_leaves_nothing_that_blocks_a_fixed_rerun(tmp_path):
    out = tmp_path / "out"
    fasta = tmp_path / "in.fa"
    fasta.write_text(">a\nACGTACGTACGTATGAAACCC\n>a\nACGTTT\n")
    result = run_cli("predict", str(fasta), "-o", str(out), "--models", "demo")
    assert result.returncode == 3
    assert "duplicate record ID 'a'" in one_error_line(result.stderr)
    assert no_results(out) and not (out / "work").exists()
    fasta.write_text(">a\nACGTACGTACGTATGAAACCC\n>b\nACGTTT\n")
    fixed = run_cli("predict", str(fasta), "-o", str(out), "--models", "demo")
    assert fixed.returncode == 0, fixed.stderr.decode()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--gpus", "0"], "no CUDA GPU is visible"),
        (["--parallel"], "no CUDA GPU is visible"),
        (["--workers", "2", "--gpus", "0"], "cannot be combined"),
        (["--workers", "2", "--device", "cuda"], "--workers runs CPU worker processes"),
        (["--esm-model", "x.pt"], "--models demo cannot be combined"),
    ],
)
def test_contradictory_or_absent_devices_are_usage_errors(tmp_path, extra, message):
    if "no CUDA" in message and os.environ.get("CUDA_VISIBLE_DEVICES", "") not in ("", "-1"):
        pytest.skip("GPUs may be visible here")
    out = tmp_path / "out"
    result = run_cli("predict", str(EXAMPLE), "-o", str(out), "--models", "demo", *extra)
    assert result.returncode == 2, result.stderr.decode()
    assert message in one_error_line(result.stderr)
    assert no_results(out)


def test_missing_published_models_fail_fast_offline(tmp_path):
    out = tmp_path / "out"
    env = {
        "VIRNUCPRO_CACHE": str(tmp_path / "cache"),
        "TORCH_HOME": str(tmp_path / "torch"),
        "HF_HOME": str(tmp_path / "hf"),
    }
    result = run_cli("predict", str(EXAMPLE), "-o", str(out), "--offline", env=env, timeout=60)
    assert result.returncode == 4
    line = one_error_line(result.stderr)
    assert "is not available" in line and "virnucpro models download" in line
    assert no_results(out)


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_malicious_classifier_is_refused_and_nothing_runs(tmp_path):
    bad = tmp_path / "evil.pth"
    bad.write_bytes(pickle.dumps(_Exploit()))
    out = tmp_path / "out"
    args = fixture_args(out)
    args[args.index("--model-path") + 1] = str(bad)
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 4
    assert "system" in one_error_line(result.stderr)
    assert not (tmp_path / "PWNED").exists()
    assert no_results(out)


def test_classifier_of_the_wrong_size_is_explained(tmp_path):
    out = tmp_path / "out"
    args = fixture_args(out)
    args[args.index("--esm-model") + 1] = str(TINY_REF / "models" / "esm2_t36_tiny.pt")
    # The demo classifier expects 48 + 32 = 80 inputs like the fixture one, so build a mismatch:
    import torch

    from virnucpro.models.classifier import MLPClassifier

    wrong = tmp_path / "wrong.pth"
    torch.save(MLPClassifier(input_dim=100, hidden_dim=8).state_dict(), wrong)
    args[args.index("--model-path") + 1] = str(wrong)
    result = run_cli(*args)
    assert result.returncode == 4
    line = one_error_line(result.stderr)
    assert "100" in line and "48" in line and "32" in line


def test_keep_features_on_a_finished_run_adds_the_features(tmp_path):
    out = tmp_path / "out"
    first = run_cli("predict", str(EXAMPLE), "-o", str(out), "--models", "demo")
    assert first.returncode == 0, first.stderr.decode()
    tables = {name: (out / name).read_bytes() for name in RESULTS}
    assert not (out / "work" / "features").exists()
    again = run_cli("predict", str(EXAMPLE), "-o", str(out), "--models", "demo", "--keep-features")
    assert again.returncode == 0, again.stderr.decode()
    assert sorted(p.name for p in (out / "work" / "features").glob("*.safetensors")) == [
        "shard-00001.dnabert.safetensors", "shard-00001.esm.safetensors",
    ]
    assert {name: (out / name).read_bytes() for name in RESULTS} == tables


def test_every_record_appears_once_in_the_contig_summary(tmp_path):
    """Empty records first, between and last, a record with no kept frame, and
    records long enough to span shards: each appears exactly once, in input order."""
    example = EXAMPLE.read_text().split(">")[1:]
    records = [
        ">empty_first\n",
        ">" + example[0],
        ">empty_middle\n\n",
        ">no_codons\n" + "N" * 400 + "\n",  # every codon has an N: no frame is kept
        ">" + example[1],
        ">" + example[2],
        ">empty_last\n",
    ]
    fasta = tmp_path / "mixed.fa"
    fasta.write_text("".join(records))
    out = tmp_path / "out"
    result = run_cli("predict", str(fasta), "-o", str(out), "--models", "demo", "--shard-size", "2")
    assert result.returncode == 0, result.stderr.decode()
    rows = [line.split("\t") for line in (out / "contig_summary.tsv").read_text().splitlines()[1:]]
    expected_ids = [r[1:].split()[0] for r in records]
    assert [r[0] for r in rows] == expected_ids
    status = {r[0]: r[6] for r in rows}
    assert status["empty_first"] == status["empty_middle"] == status["empty_last"] == "empty_skipped"
    assert status["no_codons"] == "no_kept_frame"
    assert "7 records (3 empty skipped)" in result.stderr.decode()
