"""Many samples in one ``predict``: DIR/<sample>/ as separate runs write it, resume per sample,
a bad sample reported while the others finish, and the refusals before any work."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import os
import time
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, one_error_line, run_cli
from tests.integration.test_predict_resume import cli_env, start_cli, verified_markers

pytestmark = pytest.mark.slow

EXAMPLE = REPO_ROOT / "examples" / "example_contigs.fa"
TABLES = ("prediction_results.txt", "prediction_results_highestscore.csv", "chunk_scores.tsv", "contig_summary.tsv",
          "viral_contigs.fa", "viral_regions.tsv", "viral_regions.bed", "viral_regions.gff3", "NOTICE.txt")
DEMO = ("--models", "demo", "--no-dashboard", "--device", "cpu", "--precision", "fp32")


def _records(first: int, last: int) -> list[tuple[str, str]]:
    records, name, seq = [], None, []
    for line in EXAMPLE.read_text().splitlines():
        if line.startswith(">"):
            if name is not None:
                records.append((name, "".join(seq)))
            name, seq = line[1:], []
        else:
            seq.append(line)
    records.append((name, "".join(seq)))
    return records[first:last]


def _inputs(tmp: Path) -> dict[str, Path]:
    """Three samples: plain FASTA, gzipped FASTQ, xz FASTA (sample -> file)."""
    a = tmp / "gut1.fa"
    a.write_text("".join(f">{n}\n{s}\n" for n, s in _records(0, 6)))
    b = tmp / "gut2.fq.gz"
    b.write_bytes(gzip.compress("".join(f"@{n}\n{s}\n+\n{'I' * len(s)}\n" for n, s in _records(6, 10)).encode()))
    c = tmp / "soil.fa.xz"
    c.write_bytes(lzma.compress("".join(f">{n}\n{s}\n" for n, s in _records(10, 14)).encode()))
    return {"gut1": a, "gut2": b, "soil": c}


def _listing(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def test_many_samples_write_what_separate_runs_write(tmp_path):
    inputs = _inputs(tmp_path)
    many = tmp_path / "many"
    result = run_cli("predict", *map(str, inputs.values()), "-o", str(many), *DEMO)
    assert result.returncode == 0, result.stderr.decode()
    for name, path in inputs.items():
        alone = tmp_path / f"alone-{name}"
        single = run_cli("predict", str(path), "-o", str(alone), *DEMO)
        assert single.returncode == 0, single.stderr.decode()
        assert _listing(many / name) == _listing(alone)
        for table in TABLES:
            assert (many / name / table).read_bytes() == (alone / table).read_bytes(), (name, table)
        stats = json.loads((many / name / "virnucpro_generalstats_mqc.json").read_text())
        assert list(stats["data"]) == [name]  # one MultiQC General Statistics row per sample
    rows = [line.split("\t") for line in (many / "samples_summary.tsv").read_text().splitlines()]
    assert rows[0] == ["sample", "sequences", "scored", "virus", "regions", "frames", "seconds", "status"]
    assert [row[0] for row in rows[1:]] == list(inputs)
    summary = json.loads((many / "run_summary.json").read_text())
    assert summary["status"] == "ok" and summary["samples_done"] == 3
    for row, entry in zip(rows[1:], summary["samples"], strict=True):
        counts = json.loads((many / row[0] / "run_summary.json").read_text())["counts"]
        assert row[1:6] == [str(counts[k]) for k in ("sequences", "sequences_scored", "sequences_virus",
                                                     "viral_regions", "kept_frames")]
        assert row[7] == entry["status"] == "ok" and entry["counts"] == counts
    assert [int(row[1]) for row in rows[1:]] == [6, 4, 4]
    # A one-input predict and a merge of parts refuse the many-sample DIR (plot and features take
    # it: tests/integration/test_sample_commands.py).
    for command in (["predict", str(inputs["gut1"]), "-o", str(many), *DEMO],
                    ["merge", str(many), "-o", str(tmp_path / "merged")]):
        refused = run_cli(*command)
        assert refused.returncode == 2 and f"pass {many}/<sample>" in one_error_line(refused.stderr), command
    assert run_cli("plot", str(many / "gut1"), "-o", str(tmp_path / "gut1.pdf")).returncode == 0
    # ... and a many-sample run refuses a one-input run's DIR.
    into_single = run_cli("predict", *map(str, inputs.values()), "-o", str(tmp_path / "alone-gut1"), *DEMO)
    assert into_single.returncode == 2 and "holds a one-input run" in one_error_line(into_single.stderr)


def test_samples_file_names_samples_and_refusals_come_before_any_work(tmp_path):
    inputs = _inputs(tmp_path)
    out = tmp_path / "out"
    (tmp_path / "other").mkdir()
    clash = tmp_path / "other" / "gut1.fa.bz2"
    clash.write_bytes(bz2.compress(b">s\nACGT\n"))
    cases = [
        ((str(inputs["gut1"]), str(clash)), 2, "two samples are named 'gut1'"),
        ((str(inputs["gut1"]), str(tmp_path / "nope.fa")), 3, "nope.fa: no such file"),
        (("-", "-"), 2, "cannot be given twice"),
    ]
    for args, code, message in cases:
        result = run_cli("predict", *args, "-o", str(out), *DEMO)
        assert result.returncode == code and message in one_error_line(result.stderr), result.stderr.decode()
        assert not out.exists()
    tsv = tmp_path / "samples.tsv"
    tsv.write_text(f"first\t{inputs['gut1']}\nsecond\t{clash}\n")
    result = run_cli("predict", "--samples", str(tsv), "-o", str(out), *DEMO)
    assert result.returncode == 0, result.stderr.decode()
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["first", "second"]
    assert (out / "second" / "contig_summary.tsv").read_text().count("\n") == 2  # header + 1 sequence


def test_a_bad_sample_is_reported_and_the_others_finish(tmp_path):
    inputs = _inputs(tmp_path)
    bad = tmp_path / "broken.fa"
    bad.write_text(">x\nACGT@@\n")
    out = tmp_path / "out"
    result = run_cli("predict", str(inputs["gut1"]), str(bad), str(inputs["soil"]), "-o", str(out), *DEMO)
    assert result.returncode == 7, result.stderr.decode()
    assert "1 of 3 samples failed (broken)" in one_error_line(result.stderr)
    assert "'@'" in (out / "broken" / "FAILED.txt").read_text()
    statuses = [line.split("\t")[-1] for line in (out / "samples_summary.tsv").read_text().splitlines()[1:]]
    assert statuses == ["ok", "failed", "ok"]
    assert (out / "soil" / "contig_summary.tsv").is_file()
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["status"] == "some_failed" and summary["exit_code"] == 7
    assert summary["samples"][1]["exit_code"] == 3
    # Fixed input: the re-run computes only that sample and the FAILED.txt is gone.
    bad.write_text(">x\nACGTACGTACGT\n")
    before = verified_markers(out / "gut1")
    fixed = run_cli("predict", str(inputs["gut1"]), str(bad), str(inputs["soil"]), "-o", str(out), *DEMO)
    assert fixed.returncode == 0, fixed.stderr.decode()
    assert not (out / "broken" / "FAILED.txt").exists() and (out / "broken" / "contig_summary.tsv").is_file()
    assert verified_markers(out / "gut1") == before


def test_a_stopped_run_resumes_per_sample_and_an_added_sample_is_the_only_one_computed(tmp_path):
    inputs = _inputs(tmp_path)
    out = tmp_path / "out"
    args = ["predict", str(inputs["gut1"]), str(inputs["gut2"]), "-o", str(out), *DEMO]
    # Stopped as gut1 ends: gut2 is running then (it started once gut1's tasks were all queued).
    stopped = run_cli(*args, env={"VIRNUCPRO_SIGNAL_AT": "sample-done:gut1:TERM"})
    assert stopped.returncode == 143, stopped.stderr.decode()
    statuses = [line.split("\t")[-1] for line in (out / "samples_summary.tsv").read_text().splitlines()[1:]]
    assert statuses[0] == "ok" and statuses[1] in ("interrupted", "ok")  # ok: gut2 was as quick as gut1's end
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["exit_code"] == 143
    first = verified_markers(out / "gut1")
    assert first
    done_in_gut2 = verified_markers(out / "gut2")
    resumed = run_cli(*args)
    assert resumed.returncode == 0, resumed.stderr.decode()
    assert verified_markers(out / "gut1") == first  # nothing of the finished sample redone
    _assert_nothing_redone(out / "gut2", done_in_gut2)  # nor what gut2 had finished
    second = verified_markers(out / "gut2")
    assert second
    added = run_cli(*args[:3], str(inputs["soil"]), *args[3:])
    assert added.returncode == 0, added.stderr.decode()
    assert verified_markers(out / "gut1") == first and verified_markers(out / "gut2") == second
    assert (out / "soil" / "contig_summary.tsv").is_file()


def _assert_nothing_redone(folder: Path, before: dict[Path, int]) -> None:
    """After a resumed run finished ``folder``: what verified ``before`` was not computed again."""
    # Shards and features go with the intermediates once a sample ends; the rest stays untouched.
    now = verified_markers(folder)
    kept = {m for m in before if m.parent.name not in ("features", "shards")}
    assert kept <= set(now) and all(now[m] == before[m] for m in kept), folder
    # A shard embedded before the stop (and not scored) had its features reused, not computed again.
    stages = json.loads((folder / "run_summary.json").read_text())["stages"]
    scored = {m.name.split(".")[0] for m in before if m.parent.name == "scores"}
    for kind in ("dnabert", "esm"):
        embedded = {m.name.split(".")[0] for m in before if m.parent.name == "features" and f".{kind}." in m.name}
        assert len(embedded - scored) <= stages[kind]["reused_shards"], (folder, kind)


def _group_members(pgid: int) -> list[int]:
    import psutil

    members = []
    for process in psutil.process_iter():
        try:
            if os.getpgid(process.pid) == pgid and process.status() != psutil.STATUS_ZOMBIE:
                members.append(process.pid)
        except (OSError, psutil.Error):
            continue
    return members


def test_one_set_of_workers_serves_every_sample_and_stops_with_the_run(tmp_path):
    inputs = _inputs(tmp_path)
    out = tmp_path / "out"
    workers = ("--workers", "2")
    result = run_cli("predict", *map(str, inputs.values()), "-o", str(out), *DEMO, *workers)
    assert result.returncode == 0, result.stderr.decode()
    loads = [[w["load_seconds"] for w in json.loads((out / name / "run_summary.json").read_text())["workers"]]
             for name in inputs]
    # Two worker processes for the whole run, each loading the models once; a load is listed in one
    # sample's summary (the oldest running when it ended; none if the run ended first).
    assert (out / "virnucpro.log").read_text().count("started worker cpu-") == 2
    assert loads[0] and 1 <= sum(1 for sample in loads for load in sample if load) <= 2
    assert all(len(sample) <= 2 for sample in loads)
    alone = tmp_path / "alone"
    single = run_cli("predict", str(inputs["gut2"]), "-o", str(alone), *DEMO, *workers)
    assert single.returncode == 0, single.stderr.decode()
    for table in TABLES:
        assert (out / "gut2" / table).read_bytes() == (alone / table).read_bytes(), table
    # Stopped between samples (workers idle, kept): the run exits 143 and leaves no worker behind.
    stopped_dir = tmp_path / "stopped"
    process = start_cli(["predict", *map(str, inputs.values()), "-o", str(stopped_dir), *DEMO, *workers],
                        env={**cli_env(), "VIRNUCPRO_SIGNAL_AT": "sample:soil:TERM"})
    assert process.wait(timeout=300) == 143, process.stderr.read().decode()
    deadline = time.monotonic() + 10
    while _group_members(process.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _group_members(process.pid) == []


def test_a_run_killed_inside_a_sample_resumes_it_and_runs_the_rest(tmp_path):
    inputs = _inputs(tmp_path)
    out = tmp_path / "out"
    args = ["predict", str(inputs["gut1"]), str(inputs["gut2"]), "-o", str(out), *DEMO]
    killed = run_cli(*args, env={"VIRNUCPRO_SIGNAL_AT": "after:translate:KILL"})  # the first sample's
    assert killed.returncode == -9
    shards = {p.name for p in (out / "gut1" / "work" / "shards").glob("*.done")}
    assert shards and not (out / "gut2").exists()
    resumed = run_cli(*args)
    assert resumed.returncode == 0, resumed.stderr.decode()
    for name in ("gut1", "gut2"):
        alone = tmp_path / f"alone-{name}"
        assert run_cli("predict", str(inputs[name]), "-o", str(alone), *DEMO).returncode == 0
        for table in TABLES:
            assert (out / name / table).read_bytes() == (alone / table).read_bytes(), (name, table)


def _absolute(summary: dict, seconds: float) -> float:
    """A time of a sample's run_summary.json (seconds from its start) on the run's time line."""
    return summary["start_time"] + seconds


def test_one_queue_spans_the_samples_and_a_bad_one_between_them_fails_alone(tmp_path):
    big = tmp_path / "big.fa"
    big.write_text("".join(f">{n}\n{s}\n" for n, s in _records(0, 29)))
    small = tmp_path / "small.fa"
    small.write_text("".join(f">{n}\n{s}\n" for n, s in _records(29, 31)))
    bad = tmp_path / "broken.fa"
    bad.write_text(">x\nACGT@@\n")
    options = (*DEMO, "--workers", "2", "--shard-size", "4")
    out = tmp_path / "out"
    result = run_cli("predict", str(big), str(bad), str(small), "-o", str(out), *options)
    assert result.returncode == 7, result.stderr.decode()
    assert "1 of 3 samples failed (broken)" in one_error_line(result.stderr)
    assert "'@'" in (out / "broken" / "FAILED.txt").read_text()
    statuses = [line.split("\t")[-1] for line in (out / "samples_summary.tsv").read_text().splitlines()[1:]]
    assert statuses == ["ok", "failed", "ok"]
    summaries = {name: json.loads((out / name / "run_summary.json").read_text()) for name in ("big", "small")}
    # The queue spans the samples: small's first embedding began before big was scored and assembled
    # (one queue per sample would start small's only after big's tables were written).
    small_first = min(_absolute(summaries["small"], summaries["small"]["stages"][kind]["first_shard_s"])
                      for kind in ("dnabert", "esm"))
    big_done = _absolute(summaries["big"], summaries["big"]["stages"]["assemble"]["end_s"])
    assert small_first < big_done
    # ... on one set of workers: two worker processes in the whole run, each load reported once.
    assert (out / "virnucpro.log").read_text().count("started worker cpu-") == 2
    loads = [w["load_seconds"] for s in summaries.values() for w in s["workers"]]
    assert sum(1 for load in loads if load) == 2 and all(len(s["workers"]) == 2 for s in summaries.values())
    # Each sample's log holds its own lines only (two samples ran at once).
    big_log, small_log = ((out / name / "virnucpro.log").read_text() for name in ("big", "small"))
    assert str(big) in big_log and str(small) not in big_log and "small/shard-" not in big_log
    assert str(small) in small_log and str(big) not in small_log and "big/shard-" not in small_log
    for name, path in (("big", big), ("small", small)):
        alone = tmp_path / f"alone-{name}"
        single = run_cli("predict", str(path), "-o", str(alone), *options)
        assert single.returncode == 0, single.stderr.decode()
        assert _listing(out / name) == _listing(alone)
        for table in TABLES:
            assert (out / name / table).read_bytes() == (alone / table).read_bytes(), (name, table)


def test_a_run_killed_while_two_samples_run_resumes_redoing_nothing_finished(tmp_path):
    inputs = _inputs(tmp_path)
    out = tmp_path / "out"
    args = ["predict", *map(str, inputs.values()), "-o", str(out), *DEMO, "--workers", "2"]
    # SIGKILL as gut1 ends: gut2 (started once gut1's tasks were queued) is running then.
    process = start_cli(args, env={**cli_env(), "VIRNUCPRO_SIGNAL_AT": "sample-done:gut1:KILL"})
    assert process.wait(timeout=300) == -9
    deadline = time.monotonic() + 10
    while _group_members(process.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _group_members(process.pid) == []  # the workers died with the run
    done = {name: verified_markers(out / name) for name in inputs if (out / name).exists()}
    assert done["gut1"] and (out / "gut1" / "contig_summary.tsv").is_file()
    resumed = run_cli(*args)
    assert resumed.returncode == 0, resumed.stderr.decode()
    for name, before in done.items():
        _assert_nothing_redone(out / name, before)
    alone = tmp_path / "alone-gut2"
    assert run_cli("predict", str(inputs["gut2"]), "-o", str(alone), *DEMO, "--workers", "2").returncode == 0
    for table in TABLES:
        assert (out / "gut2" / table).read_bytes() == (alone / table).read_bytes(), table
