"""Duplicate reads end to end: identical frames are embedded once per run and model, across
shards, and scored exactly like the original; the plan survives a stop and a resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_cli
from virnucpro.pipeline.stages.frames import iter_chunk_frames

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "example_contigs.fa"
CHUNK = 500


def _records() -> list[tuple[str, str]]:
    out = []
    for block in EXAMPLE.read_text().split(">")[1:]:
        lines = block.splitlines()
        out.append((lines[0].split()[0], "".join(lines[1:])))
    return out


def _synonymous_variant(seq: str, tmp: Path) -> str:
    """``seq`` with one base changed so that a kept frame's DNA differs but its protein does not
    (DNABERT-S sees a new sequence there, ESM-2 a repeat)."""
    def kept(s: str) -> dict[tuple[int, str], tuple[str, str]]:
        tmp.write_text(f">x\n{s}\n")
        return {(c.chunk_index, f.suffix): (f.nucleotide, f.protein)
                for c in iter_chunk_frames(tmp, CHUNK) for f in c.frames}

    original = kept(seq)
    for (chunk_index, _), _ in original.items():
        for position in range((chunk_index - 1) * CHUNK, min(len(seq), chunk_index * CHUNK)):
            for base in "ACGT":
                if base == seq[position]:
                    continue
                variant = seq[:position] + base + seq[position + 1:]
                changed = kept(variant)
                if any(k in original and original[k][1] == p and original[k][0] != d
                       for k, (d, p) in changed.items()):
                    return variant
    raise AssertionError("no synonymous single-base change found")


def _expected_reused(fasta: Path) -> dict[str, int]:
    """Frames minus distinct sequences, per model: what must not be embedded."""
    dna, protein, frames = set(), set(), 0
    for chunk in iter_chunk_frames(fasta, CHUNK):
        for frame in chunk.frames:
            frames += 1
            dna.add(frame.nucleotide)
            protein.add(frame.protein)
    return {"dnabert": frames - len(dna), "esm": frames - len(protein)}


def _scores(out: Path) -> dict[str, str]:
    rows = (out / "prediction_results.txt").read_text().splitlines()[1:]
    return {line.split("\t", 1)[0]: line.split("\t", 1)[1] for line in rows}


@pytest.fixture(scope="module")
def dups_fasta(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("dups")
    (a_id, a), (_, other), *_ = _records()
    variant = _synonymous_variant(a, tmp / "probe.fa")
    fasta = tmp / "dups.fa"
    # b and c repeat a in later shards; v differs from a in one base (same protein in one frame).
    fasta.write_text(f">a\n{a}\n>o\n{other}\n>b\n{a}\n>v\n{variant}\n>c\n{a}\n")
    return fasta


def _predict(fasta: Path, out: Path, *extra: str, env: dict | None = None):
    return run_cli("predict", str(fasta), "-o", str(out), "--models", "demo", "--no-dashboard",
                   "--shard-size", "4", *extra, env=env)


@pytest.mark.slow
def test_identical_frames_are_embedded_once_across_shards_and_scored_like_the_original(
        dups_fasta: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = _predict(dups_fasta, out, "--keep-features")
    assert result.returncode == 0, result.stderr.decode()
    summary = json.loads((out / "run_summary.json").read_text())
    counts = summary["counts"]
    assert counts["shards"] > 2
    expected = _expected_reused(dups_fasta)
    assert expected["esm"] > expected["dnabert"] > 0  # the variant repeats a protein, not its DNA
    for kind in ("dnabert", "esm"):
        assert counts[f"{kind}_reused_frames"] == expected[kind], counts
        assert summary["stages"][kind]["duplicate_frames"] == expected[kind], summary["stages"][kind]
        rows = 0
        for path in sorted((out / "work" / "features").glob(f"*.{kind}.safetensors")):
            from safetensors import safe_open

            with safe_open(str(path), "np") as handle:
                rows += handle.get_slice("embeddings").get_shape()[0]
        assert rows == counts["kept_frames"] - expected[kind]  # each distinct sequence embedded once
    scores = _scores(out)
    frames_of_a = [f for f in scores if f.startswith("a_")]
    assert frames_of_a
    for frame_id in frames_of_a:
        assert scores["b_" + frame_id[2:]] == scores[frame_id] == scores["c_" + frame_id[2:]]

    # Export gives every frame its row; the repeats' rows are the original's, bit for bit.
    exported = run_cli("features", "export", str(out))
    assert exported.returncode == 0, exported.stderr.decode()
    for kind in ("dnabert", "esm"):
        ids = (out / "features" / f"{kind}_ids.txt").read_text().split()
        array = np.load(out / "features" / f"{kind}_embeddings.npy")
        assert len(ids) == array.shape[0] == counts["kept_frames"]
        row = {frame_id: i for i, frame_id in enumerate(ids)}
        for frame_id in frames_of_a:
            for repeat in ("b_", "c_"):
                assert np.array_equal(array[row[repeat + frame_id[2:]]], array[row[frame_id]])


@pytest.mark.slow
@pytest.mark.parametrize("boundary", ["after:dnabert", "after:esm"])
def test_a_stopped_run_resumes_to_the_same_tables(dups_fasta: Path, tmp_path: Path, boundary: str) -> None:
    whole = tmp_path / "whole"
    assert _predict(dups_fasta, whole).returncode == 0
    out = tmp_path / "stopped"
    stopped = _predict(dups_fasta, out, env={"VIRNUCPRO_SIGNAL_AT": boundary})
    assert stopped.returncode == 143, stopped.stderr.decode()
    resumed = _predict(dups_fasta, out)
    assert resumed.returncode == 0, resumed.stderr.decode()
    for name in ("prediction_results.txt", "prediction_results_highestscore.csv", "contig_summary.tsv"):
        assert (out / name).read_bytes() == (whole / name).read_bytes(), name
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["stages"]["dnabert"]["reused_shards"] == summary["counts"]["shards"]


@pytest.mark.slow
def test_a_lost_score_file_whose_shard_reuses_rows_is_rescored_from_recomputed_sources(
        dups_fasta: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert _predict(dups_fasta, out).returncode == 0
    before = (out / "prediction_results.txt").read_bytes()
    # The last shard reuses rows of earlier shards, whose features the finished run removed.
    scores = sorted((out / "work" / "scores").glob("shard-*.tsv"))
    scores[-1].unlink()
    again = _predict(dups_fasta, out)
    assert again.returncode == 0, again.stderr.decode()
    assert (out / "prediction_results.txt").read_bytes() == before


@pytest.mark.slow
def test_pool_scoring_waits_for_the_shards_a_shard_reuses_rows_of(dups_fasta: Path, tmp_path: Path) -> None:
    serial = tmp_path / "serial"
    assert _predict(dups_fasta, serial).returncode == 0
    pooled = tmp_path / "pooled"
    result = _predict(dups_fasta, pooled, "--workers", "2", "--score-workers", "1", "-v")
    assert result.returncode == 0, result.stderr.decode()
    summary = json.loads((pooled / "run_summary.json").read_text())
    assert summary["stages"]["score"]["workers"] == 1
    assert summary["stages"]["score"]["computed_shards"] == summary["counts"]["shards"]
    for name in ("prediction_results.txt", "prediction_results_highestscore.csv", "contig_summary.tsv"):
        assert (pooled / name).read_bytes() == (serial / name).read_bytes(), name
