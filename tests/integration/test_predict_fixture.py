"""`virnucpro predict` end to end against the published tool's own outputs (FP32, CPU)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import TINY_REF, run_cli
from tests.helpers.published import assert_chunk_calls_match, assert_predictions_match, read_table

# End-to-end runs in subprocesses: part of `make test`, not of `make test-fast`.
pytestmark = pytest.mark.slow

MODELS = TINY_REF / "models"
EXPECTED = TINY_REF / "expected"


def fixture_args(out: Path, *extra: str) -> list[str]:
    return [
        "predict", str(TINY_REF / "contigs.fa"), "-o", str(out),
        "--esm-model", str(MODELS / "esm2_t36_tiny.pt"),
        "--dnabert-model", str(MODELS / "dnabert_tiny"),
        "--model-path", str(MODELS / "classifier_tiny.pth"),
        "--precision", "fp32", "--device", "cpu", "--offline", "--no-dashboard",
        *extra,
    ]


@pytest.fixture(scope="module")
def fixture_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("predict") / "out"
    result = run_cli(*fixture_args(out, "--keep-features", "--shard-size", "100"))
    assert result.returncode == 0, result.stderr.decode()
    return out


def test_result_files_match_published(fixture_run):
    """Scores within 1e-5, labels and chunk calls identical but for the knife-edge cases (SPEC, issue 11).

    The fixture has exactly one knife-edge frame (published 0.5/0.5, an artefact of how its random
    classifier was centred), so one frame and one chunk are knife-edge.
    """
    frames = assert_predictions_match(fixture_run / "prediction_results.txt", EXPECTED / "prediction_results.txt")
    chunks = assert_chunk_calls_match(fixture_run / "prediction_results_highestscore.csv",
                                      EXPECTED / "prediction_results_highestscore.csv",
                                      EXPECTED / "prediction_results.txt")
    assert (frames, chunks) == (1, 1)


def test_kept_features_match_published_embeddings(fixture_run):
    from virnucpro.pipeline.stages.feature_files import read_features

    for kind, name in (("dnabert", "dnabert_embeddings.pt"), ("esm", "esm_embeddings.pt")):
        expected = torch.load(EXPECTED / name)
        want = dict(zip(expected["ids"], expected["embeddings"].numpy()))
        seen = 0
        for path in sorted((fixture_run / "work" / "features").glob(f"*.{kind}.safetensors")):
            features = read_features(path)
            for fid, row in zip(features.ids, features.embeddings):
                assert np.abs(row - want[fid]).max() <= 1e-5, (kind, fid)
                seen += 1
        assert seen == len(want)


def test_contig_summary_has_every_input_sequence_once(fixture_run):
    header, rows = read_table(fixture_run / "contig_summary.tsv")
    assert header.split("\t")[:3] == ["sequence_id", "length", "chunks"]
    input_ids = [line[1:].split()[0] for line in (TINY_REF / "contigs.fa").read_text().splitlines() if line.startswith(">")]
    assert [r[0] for r in rows] == input_ids
    # Chunks called virus per contig agree with the per-chunk table.
    _, chunk_rows = read_table(fixture_run / "prediction_results_highestscore.csv")
    virus_per_contig: dict[str, int] = {}
    for chunk_id, is_virus in chunk_rows:
        contig = chunk_id.rsplit("_chunk_", 1)[0]
        virus_per_contig[contig] = virus_per_contig.get(contig, 0) + (is_virus == "True")
    for row in rows:
        assert int(row[4]) == virus_per_contig.get(row[0], 0)


def test_run_summary_counts(fixture_run):
    summary = json.loads((fixture_run / "run_summary.json").read_text())
    expected_frames = len(read_table(EXPECTED / "prediction_results.txt")[1])
    assert summary["counts"]["kept_frames"] == expected_frames
    assert summary["counts"]["sequences"] == 160
    assert summary["precision"] == "fp32"
    assert (summary["status"], summary["exit_code"], summary["error"]) == ("ok", 0, None)
    assert summary["notice"] is None


def test_scores_do_not_depend_on_batching(tmp_path, fixture_run):
    out = tmp_path / "tiny-batches"
    result = run_cli(*fixture_args(out, "--batch-tokens", "64", "--shard-size", "37"))
    assert result.returncode == 0, result.stderr.decode()
    assert_predictions_match(out / "prediction_results.txt", fixture_run / "prediction_results.txt", tol=1e-6)
    assert not (out / "work" / "features").exists()  # removed without --keep-features
