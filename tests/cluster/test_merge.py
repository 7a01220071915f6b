"""``virnucpro merge``: split -> ordinary predict per part -> merge equals a single run, byte for byte."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cluster.conftest import MODEL_ARGS, cli_env, predict, results_of
from tests.conftest import run_cli

# End-to-end runs in subprocesses: part of `make test`, not of `make test-fast`.
pytestmark = pytest.mark.slow


def split(fasta: Path, n: int, parts: Path) -> dict:
    result = run_cli("split", str(fasta), "-n", str(n), "-o", str(parts))
    assert result.returncode == 0, result.stderr.decode()
    return json.loads((parts / "manifest.json").read_text())


def predict_parts(manifest: dict, parts: Path, runs: Path) -> list[Path]:
    """Run predict on every part with records, as a cluster job would."""
    done = []
    for part in manifest["parts"]:
        if part["records"]:
            run_dir = runs / part["file"].removesuffix(".fa.gz")
            predict(parts / part["file"], run_dir)
            done.append(run_dir)
    return done


def merge(*args: str):
    return run_cli("merge", *args)


def refusal(result) -> str:
    err = result.stderr.decode()
    assert result.returncode != 0, err
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def three_parts(tmp_path_factory, small_inputs):
    """The 24-record input split in three, every part predicted."""
    root = tmp_path_factory.mktemp("three")
    manifest = split(small_inputs["many"], 3, root / "parts")
    runs = predict_parts(manifest, root / "parts", root / "runs")
    return root, manifest, runs


@pytest.mark.parametrize(("name", "n"), [("many", 1), ("many", 2), ("few", 7)])
def test_merged_equals_single_run(tmp_path, small_inputs, single_runs, name, n):
    manifest = split(small_inputs[name], n, tmp_path / "parts")
    runs = predict_parts(manifest, tmp_path / "parts", tmp_path / "runs")
    assert len(runs) == sum(1 for p in manifest["parts"] if p["records"])
    if name == "few":
        assert len(runs) < n  # empty parts: no run, and merge accepts that
    result = merge(*map(str, reversed(runs)), "-o", str(tmp_path / "merged"),
                   "--manifest", str(tmp_path / "parts" / "manifest.json"))
    assert result.returncode == 0, result.stderr.decode()
    assert results_of(tmp_path / "merged") == results_of(single_runs[name])


def test_merged_summary_sums_counts_and_lists_parts(tmp_path, three_parts, single_runs):
    root, manifest, runs = three_parts
    result = merge(*map(str, runs), "-o", str(tmp_path / "merged"), "--manifest", str(root / "parts" / "manifest.json"))
    assert result.returncode == 0, result.stderr.decode()
    assert results_of(tmp_path / "merged") == results_of(single_runs["many"])
    merged = json.loads((tmp_path / "merged" / "run_summary.json").read_text())
    single = json.loads((single_runs["many"] / "run_summary.json").read_text())
    for key in ("sequences", "skipped_empty", "bases", "chunks", "kept_frames", "frames_virus", "virus_chunks",
                "published_virus_chunks", "chunks_scored", "frames_scored", "too_short", "viral_regions"):
        assert merged["counts"][key] == single["counts"][key], key
    # the closing line counts what predict's does: every chunk scored, not only those with a kept frame
    counts = single["counts"]
    assert counts["chunks_scored"] == counts["chunks"] > counts["chunks_with_frames"]
    line = next(line for line in result.stderr.decode().splitlines() if line.startswith("merge: 3 part(s)"))
    assert (f"{counts['sequences']} sequences, {counts['chunks']} chunks and {counts['kept_frames']} kept frames "
            f"scored, {counts['virus_chunks']} virus chunk(s)") in line
    assert merged["calls"] == single["calls"]
    for key in ("sequences_scored", "sequences_virus", "sequences_not_virus", "sequences_no_call"):
        assert merged["counts"][key] == single["counts"][key], key
    assert (tmp_path / "merged" / "viral_contigs.fa").read_bytes().count(b">") == single["calls"]["virus"] > 0
    assert merged["status"] == "ok" and merged["merged_from"] == 3
    assert [p["input_sha256"] for p in merged["parts"]] == [p["sha256"] for p in manifest["parts"]]
    assert all(p["devices"] == ["cpu"] and p["wall_seconds"] > 0 for p in merged["parts"])
    assert merged["input_sha256"] == manifest["input_sha256"] and merged["models"] == single["models"]
    assert "merge of 3 run(s)" in (tmp_path / "merged" / "virnucpro.log").read_text()


def test_without_manifest_parts_are_taken_in_the_order_given(tmp_path, three_parts, single_runs):
    _, _, runs = three_parts
    assert merge(*map(str, runs), "-o", str(tmp_path / "m")).returncode == 0
    assert results_of(tmp_path / "m") == results_of(single_runs["many"])


def test_a_killed_part_is_refused_then_rerun_and_merged(tmp_path, small_inputs, single_runs):
    manifest = split(small_inputs["many"], 2, tmp_path / "parts")
    first, second = (tmp_path / "parts" / p["file"] for p in manifest["parts"])
    predict(first, tmp_path / "runs" / "part-0001")
    args = ["predict", str(second), "-o", str(tmp_path / "runs" / "part-0002"), "--no-dashboard", *MODEL_ARGS]
    killed = subprocess.run([sys.executable, "-m", "virnucpro", *args], capture_output=True, timeout=600,
                            env=cli_env() | {"VIRNUCPRO_CRASH_BEFORE_RENAME": "4"})
    assert killed.returncode == -signal.SIGKILL
    runs = [str(tmp_path / "runs" / "part-0001"), str(tmp_path / "runs" / "part-0002")]
    line = refusal(merge(*runs, "-o", str(tmp_path / "m"), "--manifest", str(tmp_path / "parts" / "manifest.json")))
    assert "part-0002" in line and "unfinished" in line
    assert not (tmp_path / "m" / "prediction_results.txt").exists()
    rerun = run_cli(*args, env=cli_env())
    assert rerun.returncode == 0, rerun.stderr.decode()
    assert merge(*runs, "-o", str(tmp_path / "m"), "--manifest", str(tmp_path / "parts" / "manifest.json")).returncode == 0
    assert results_of(tmp_path / "m") == results_of(single_runs["many"])


def test_refusals_name_the_part(tmp_path, three_parts, small_inputs):
    root, manifest, runs = three_parts
    manifest_path = str(root / "parts" / "manifest.json")
    out = str(tmp_path / "m")
    r1, r2, r3 = map(str, runs)

    line = refusal(merge(r1, r2, str(tmp_path / "nowhere"), "-o", out))
    assert "nowhere" in line and "missing part" in line

    line = refusal(merge(r1, r2, "-o", out, "--manifest", manifest_path))
    assert "part-0003.fa.gz" in line and "missing part" in line

    line = refusal(merge(r1, r2, r3, r2, "-o", out))
    assert line.endswith("part given twice (also as " + r2 + ")")
    copy = tmp_path / "copy-of-part-0002"
    shutil.copytree(r2, copy)
    line = refusal(merge(r1, r2, str(copy), r3, "-o", out))
    assert str(copy) in line and "given twice" in line

    failed = tmp_path / "failed-part"
    shutil.copytree(r3, failed)
    summary = json.loads((failed / "run_summary.json").read_text())
    summary.update(status="failed", exit_code=5, error="2 shard(s) failed")
    (failed / "run_summary.json").write_text(json.dumps(summary))
    line = refusal(merge(r1, r2, str(failed), "-o", out, "--manifest", manifest_path))
    assert str(failed) in line and "part failed (2 shard(s) failed)" in line

    other = split(small_inputs["many"], 2, tmp_path / "parts2")
    stranger = tmp_path / "runs2" / "part-0002"
    predict(tmp_path / "parts2" / other["parts"][1]["file"], stranger)
    line = refusal(merge(r1, r2, str(stranger), "-o", out, "--manifest", manifest_path))
    assert str(stranger) in line and "does not match any part of" in line

    line = refusal(merge(r3, str(stranger), "-o", out))  # no manifest: the overlap shows in the chunk IDs
    assert "parts overlap" in line

    longer = tmp_path / "runs3" / "part-0003"
    predict(root / "parts" / manifest["parts"][2]["file"], longer, "--chunk-length", "400")
    line = refusal(merge(r1, r2, str(longer), "-o", out, "--manifest", manifest_path))
    assert str(longer) in line and "other settings or models" in line and "chunk_length: 400 vs 500" in line
    assert not (tmp_path / "m" / "prediction_results.txt").exists()


def rethresholded(tmp_path, run: Path, name: str, fasta: Path, *options: str) -> Path:
    """A copy of a finished run re-run at other report-only settings (no shard recomputed)."""
    copy = tmp_path / name
    shutil.copytree(run, copy)
    predict(fasta, copy, *options)
    assert json.loads((copy / "run_summary.json").read_text())["stages"]["score"]["computed_shards"] == 0
    return copy


def test_parts_at_other_report_settings_merge_at_the_one_merge_is_given(tmp_path, three_parts, small_inputs,
                                                                         single_runs):
    """--min-score, --min-length and --region-* are report-only: parts that differ only there merge
    when merge is told which value to call them at (refused, with that hint, when it is not)."""
    root, manifest, runs = three_parts
    part_fasta = root / "parts" / manifest["parts"][2]["file"]
    other = rethresholded(tmp_path, runs[2], "part-0003", part_fasta, "--min-score", "0.6", "--region-gap", "0")
    line = refusal(merge(str(runs[0]), str(runs[1]), str(other), "-o", str(tmp_path / "m")))
    assert str(other) in line and "min_score: 0.6 vs 0.5" in line and "give merge --min-score" in line
    assert not (tmp_path / "m").exists()  # a refused merge leaves nothing
    done = merge(str(runs[0]), str(runs[1]), str(other), "-o", str(tmp_path / "m"), "--min-score", "0.5",
                 "--region-gap", "1")
    assert done.returncode == 0, done.stderr.decode()
    assert results_of(tmp_path / "m") == results_of(single_runs["many"])


@pytest.mark.parametrize("options", [("--min-score", "0.6"), ("--min-score", "0.3"), ("--min-length", "1500"),
                                     ("--region-gap", "0", "--region-min-chunks", "1")])
def test_merge_rethresholds_like_predict(tmp_path, three_parts, small_inputs, single_runs, options):
    """merge's own report-only options give what predict gives at them, without re-running a part
    (a lower threshold takes the new virus sequences from the parts' inputs)."""
    root, manifest, runs = three_parts
    single = rethresholded(tmp_path, single_runs["many"], "single", small_inputs["many"], *options)
    result = merge(*map(str, runs), "-o", str(tmp_path / "m"), "--manifest", str(root / "parts" / "manifest.json"),
                   *options)
    assert result.returncode == 0, result.stderr.decode()
    assert results_of(tmp_path / "m") == results_of(single)
    merged = json.loads((tmp_path / "m" / "run_summary.json").read_text())
    expected = json.loads((single / "run_summary.json").read_text())
    assert merged["calls"] == expected["calls"]
    for key in ("virus_chunks", "too_short", "chunks_scored", "frames_scored", "sequences_scored", "viral_regions"):
        assert merged["counts"][key] == expected["counts"][key], key


def test_a_raised_min_length_in_one_part_applies_to_all(tmp_path, three_parts, small_inputs, single_runs):
    root, manifest, runs = three_parts
    part_fasta = root / "parts" / manifest["parts"][0]["file"]
    raised = rethresholded(tmp_path, runs[0], "part-0001", part_fasta, "--min-length", "1500")
    line = refusal(merge(str(raised), str(runs[1]), str(runs[2]), "-o", str(tmp_path / "low"), "--min-length", "100"))
    assert str(raised) in line and "--min-length must be at least 1500" in line
    done = merge(str(raised), str(runs[1]), str(runs[2]), "-o", str(tmp_path / "m"))
    assert done.returncode == 0, done.stderr.decode()
    single = rethresholded(tmp_path, single_runs["many"], "single", small_inputs["many"], "--min-length", "1500")
    assert results_of(tmp_path / "m") == results_of(single)


def test_a_lower_threshold_without_the_inputs_is_refused_and_leaves_nothing(tmp_path, three_parts):
    root, manifest, runs = three_parts
    moved = tmp_path / "runs"
    shutil.copytree(runs[0].parent, moved)
    copies = sorted(moved.iterdir())
    for copy in copies:  # the parts' inputs are gone
        summary = json.loads((copy / "run_summary.json").read_text())
        summary["input"] = str(tmp_path / "gone" / Path(summary["input"]).name)
        (copy / "run_summary.json").write_text(json.dumps(summary))
    out = tmp_path / "existing"
    out.mkdir()
    (out / "mine.txt").write_text("kept\n")
    line = refusal(merge(*map(str, copies), "-o", str(out), "--min-score", "0.05"))
    assert "called virus that its viral_contigs.fa lacks" in line and "is not there" in line
    assert sorted(p.name for p in out.iterdir()) == ["mine.txt"]  # nothing new, nothing of its own removed


def test_bad_manifest_is_one_line(tmp_path, three_parts):
    _, _, runs = three_parts
    bad = tmp_path / "manifest.json"
    bad.write_text("{not json")
    line = refusal(merge(str(runs[0]), "-o", str(tmp_path / "m"), "--manifest", str(bad)))
    assert str(bad) in line and "not a valid manifest" in line


def test_a_part_that_is_still_running_is_refused(tmp_path, three_parts):
    from virnucpro.pipeline.checkpoint import output_dir_lock

    _, _, runs = three_parts
    with output_dir_lock(runs[1]):
        line = refusal(merge(*map(str, runs), "-o", str(tmp_path / "m")))
    assert str(runs[1]) in line and "still running" in line


def test_parts_made_before_one_virus_chunk_definition_merge_into_the_new_tables(tmp_path, three_parts, single_runs):
    """Parts written by the previous version (contig_summary's chunks_virus and chunk_scores' is_virus,
    both the published call; run_summary's chunks_virus) merge into today's tables."""
    from virnucpro.pipeline.report import per_sequence

    root, manifest, runs = three_parts
    old_runs = []
    for run in runs:
        old = tmp_path / "old" / run.name
        shutil.copytree(run, old)
        for name, new, previous in (
            ("contig_summary.tsv", per_sequence.CONTIG_SUMMARY_HEADER, per_sequence.PREVIOUS_CONTIG_SUMMARY_HEADER),
            ("chunk_scores.tsv", per_sequence.CHUNK_SCORES_HEADER, per_sequence.EARLIER_CHUNK_SCORES_HEADER),
        ):
            text = (old / name).read_text()
            assert text.startswith(new)
            (old / name).write_text(previous + text[len(new):])
        summary = json.loads((old / "run_summary.json").read_text())
        counts = summary["counts"]
        counts["chunks_virus"] = counts.pop("published_virus_chunks")
        for key in ("virus_chunks", "chunks_scored"):
            counts.pop(key)
        (old / "run_summary.json").write_text(json.dumps(summary))
        old_runs.append(str(old))
    result = merge(*old_runs, "-o", str(tmp_path / "m"), "--manifest", str(root / "parts" / "manifest.json"))
    assert result.returncode == 0, result.stderr.decode()
    assert results_of(tmp_path / "m") == results_of(single_runs["many"])
    counts = json.loads((tmp_path / "m" / "run_summary.json").read_text())["counts"]
    single = json.loads((single_runs["many"] / "run_summary.json").read_text())["counts"]
    assert "chunks_virus" not in counts
    assert (counts["virus_chunks"], counts["published_virus_chunks"]) == (single["virus_chunks"],
                                                                         single["published_virus_chunks"])
