"""What a new user sees on the demo models (issue 29): outputs that agree with each other, one
definition of a virus chunk, short reads said once, demo scores flagged, one-line errors, merge's
demo notice and help, and MultiQC over runs at different thresholds."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO_ROOT, cli_in_process, run_cli

EXAMPLE = REPO_ROOT / "examples" / "example_contigs.fa"
NOTICE = "demo models: scores are meaningless"
MIN_SCORE = 0.49


def rows(path: Path) -> list[list[str]]:
    return [line.split("\t") for line in path.read_text().splitlines()[1:]]


@pytest.fixture(scope="module")
def reads_run(tmp_path_factory) -> tuple[Path, Path, str]:
    """150-bp reads scored by the demo 500-bp models at --min-score 0.49, input given relative to cwd."""
    root = tmp_path_factory.mktemp("reads")
    rng = random.Random(29)
    (root / "reads.fa").write_text("".join(f">read_{i}\n{''.join(rng.choice('ACGT') for _ in range(150))}\n"
                                           for i in range(60)))
    result = run_cli("predict", "reads.fa", "-o", "out", "--models", "demo", "--no-dashboard",
                     "--min-score", str(MIN_SCORE), cwd=root)
    assert result.returncode == 0, result.stderr.decode()
    return root, root / "out", result.stderr.decode()


@pytest.mark.slow
def test_one_virus_chunk_definition_in_every_table_and_line(reads_run) -> None:
    _, out, stderr = reads_run
    chunk_rows = rows(out / "chunk_scores.tsv")
    assert (out / "chunk_scores.tsv").read_text().splitlines()[0].endswith("\tchunk_score\tvirus_chunk\tmodels")
    virus_per_seq: Counter[str] = Counter()
    for row in chunk_rows:
        want = "NA" if row[6] == "NA" else str(np.float32(row[6]) >= np.float32(MIN_SCORE))
        assert row[7] == want, row
        virus_per_seq[row[0]] += row[7] == "True"
    # the case the issue saw: a chunk between --min-score and the published 0.5
    assert any(row[6] != "NA" and MIN_SCORE <= float(row[6]) < 0.5 for row in chunk_rows)
    summary_rows = rows(out / "contig_summary.tsv")
    header = (out / "contig_summary.tsv").read_text().splitlines()[0].split("\t")
    assert header[4] == "virus_chunks" and header[6] == "status"
    for row in summary_rows:
        assert int(row[4]) == virus_per_seq[row[0]], row
    for region in rows(out / "viral_regions.tsv"):
        assert int(region[6]) <= virus_per_seq[region[0]]
    for region in rows(out / "viral_regions.tsv"):  # one-chunk reads: a region is the read's virus chunk
        assert virus_per_seq[region[0]] == 1
    assert len(rows(out / "viral_regions.tsv")) == sum(virus_per_seq.values())
    summary = json.loads((out / "run_summary.json").read_text())
    total = sum(virus_per_seq.values())
    assert summary["counts"]["virus_chunks"] == total
    assert f"{total} virus chunk(s) (chunk score >= --min-score {MIN_SCORE:g})" in stderr


@pytest.mark.slow
def test_short_records_are_said_once_with_what_to_do(reads_run) -> None:
    _, _, stderr = reads_run
    lines = [line for line in stderr.splitlines() if "shorter than the 500-bp chunks" in line]
    assert len(lines) == 1 and "60 of 60 records" in lines[0] and "-m 300" in lines[0], stderr


@pytest.mark.slow
def test_run_summary_paths_are_both_absolute(reads_run) -> None:
    root, out, _ = reads_run
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["input"] == str(root / "reads.fa")
    assert summary["output_dir"] == str(out.resolve())


@pytest.mark.slow
def test_rerun_of_a_finished_run_says_so_and_done_line_follows_min_length(reads_run, tmp_path) -> None:
    root, out, _ = reads_run
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    result = run_cli("predict", str(root / "reads.fa"), "-o", str(copy), "--models", "demo", "--no-dashboard",
                     "--min-score", str(MIN_SCORE), "--min-length", "200")
    err = result.stderr.decode()
    assert result.returncode == 0, err
    assert "resuming" not in err and f"the run in {copy} is finished" in err
    done = next(line for line in err.splitlines() if line.startswith("done:"))
    assert done.startswith("done: 60 sequences (60 below --min-length 200, not scored), 0 chunks and 0 kept "
                           "frames scored, 0 virus chunk(s)"), done


@pytest.mark.slow
def test_demo_flag_in_region_files_and_multiqc(reads_run) -> None:
    _, out, _ = reads_run
    assert (out / "NOTICE.txt").read_text().strip() == NOTICE
    assert f"# {NOTICE}\n" in (out / "viral_regions.gff3").read_text()
    assert (out / "viral_regions.bed").read_text().startswith(f"# {NOTICE}\n")
    section = json.loads((out / "virnucpro_mqc.json").read_text())
    assert "DEMO MODELS: scores are meaningless" in section["description"]
    stats = json.loads((out / "virnucpro_generalstats_mqc.json").read_text())
    assert stats["data"]["out"]["models"] == "demo"
    # the tables virnucpro adds end with a column that says so, on every row (demo runs only)
    for name in ("contig_summary.tsv", "chunk_scores.tsv", "viral_regions.tsv"):
        lines = (out / name).read_text().splitlines()
        assert lines[0].endswith("\tmodels") and len(lines) > 1, name
        assert all(line.endswith("\tdemo (scores meaningless)") for line in lines[1:]), name
    # the published tables keep their exact format (SPEC 7): no flag inside them
    assert (out / "prediction_results.txt").read_text().startswith("Sequence_ID\tPrediction\tscore1\tscore2\n")


@pytest.mark.slow
def test_ctrl_c_prints_one_interrupted_line(tmp_path) -> None:
    result = run_cli("predict", str(EXAMPLE), "-o", str(tmp_path / "out"), "--models", "demo", "--no-dashboard",
                     env={"VIRNUCPRO_SIGNAL_AT": "after:dnabert:INT"})
    err = result.stderr.decode()
    assert result.returncode == 130, err
    said = [line for line in err.splitlines() if any(w in line.lower() for w in ("interrupt", "stopp", "sigint"))]
    assert said == ["virnucpro: interrupted (SIGINT); finished work is kept, re-run the same command to continue"], err


@pytest.mark.parametrize(("args", "hint"), [
    (["predict", "--bogus"], "virnucpro predict --help"),
    (["predict"], "virnucpro predict --help"),
    (["predikt"], "virnucpro --help"),
    (["merge", "a", "-o", "b", "--min-score", "2"], "virnucpro merge --help"),
])
def test_option_errors_are_one_error_line_with_the_help_hint(args: list[str], hint: str) -> None:
    code, out, err = cli_in_process(*args)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("virnucpro: error: ") and lines[0].endswith(f"see '{hint}'"), err


def test_top_level_help_says_fastq_and_cuts_no_summary() -> None:
    code, out, _ = cli_in_process("--help")
    assert code == 0
    assert "FASTQ" in out.split("Options:")[0]
    commands = out.split("Commands:")[1].split("Exit codes:")[0]
    assert not [line for line in commands.splitlines() if line.rstrip().endswith("...")], commands  # click's cut
    assert "Score every chunk of INPUT (DNA FASTA or FASTQ" in " ".join(commands.split())


@pytest.mark.slow
def test_merge_of_demo_parts_says_so_and_help_lists_every_output(tmp_path) -> None:
    split = run_cli("split", str(EXAMPLE), "-n", "2", "-o", str(tmp_path / "parts"))
    assert split.returncode == 0, split.stderr.decode()
    runs = []
    for part in sorted((tmp_path / "parts").glob("part-*.fa.gz")):
        out = tmp_path / part.name.split(".")[0]
        done = run_cli("predict", str(part), "-o", str(out), "--models", "demo", "--no-dashboard")
        assert done.returncode == 0, done.stderr.decode()
        runs.append(str(out))
    merged = tmp_path / "merged"
    result = run_cli("merge", *runs, "-o", str(merged), "--manifest", str(tmp_path / "parts" / "manifest.json"))
    err = result.stderr.decode()
    assert result.returncode == 0, err
    assert f"*** {NOTICE} ***" in err
    assert (merged / "NOTICE.txt").read_text().strip() == NOTICE
    assert json.loads((merged / "run_summary.json").read_text())["notice"] == NOTICE
    for name in ("contig_summary.tsv", "chunk_scores.tsv"):
        lines = (merged / name).read_text().splitlines()
        assert lines[0].endswith("\tmodels") and all(line.endswith("\tdemo (scores meaningless)") for line in lines[1:])
    code, help_text, _ = cli_in_process("merge", "--help")
    assert code == 0
    for written in merged.iterdir():
        name = written.name
        shown = name if not name.startswith("viral_regions.") or name.endswith(".tsv") else name[len("viral_regions"):]
        assert shown in help_text, f"merge --help does not list {name}"


@pytest.mark.slow
def test_multiqc_over_runs_at_two_thresholds(tmp_path) -> None:
    pytest.importorskip("multiqc")
    runs = {}
    for name, score in (("at-050", "0.5"), ("at-049", "0.49")):
        runs[name] = tmp_path / name
        done = run_cli("predict", str(EXAMPLE), "-o", str(runs[name]), "--models", "demo", "--no-dashboard",
                       "--min-score", score)
        assert done.returncode == 0, done.stderr.decode()
    report = tmp_path / "report"
    done = subprocess.run([sys.executable, "-m", "multiqc", "--no-ansi", "-o", str(report), *map(str, runs.values())],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    data = json.loads((report / "multiqc_data" / "multiqc_data.json").read_text())
    assert data["report_plot_data"]["virnucpro_calls"]["pconfig"]["title"] == "VirNucPro: sequence calls"
    general = (report / "multiqc_data" / "multiqc_general_stats.txt").read_text().splitlines()
    header = general[0].split("\t")
    column = {name.rsplit("-", 1)[-1]: i for i, name in enumerate(header)}
    by_sample = {line.split("\t")[0]: line.split("\t") for line in general[1:]}
    assert set(by_sample) == set(runs)  # both samples, whatever MultiQC's bar-plot log line counts
    bars = {line.split("\t")[0]: [int(v) for v in line.split("\t")[1:]]
            for line in (report / "multiqc_data" / "multiqc_virnucpro_calls.txt").read_text().splitlines()[1:]}
    for name, run in runs.items():
        calls = json.loads((run / "run_summary.json").read_text())["calls"]
        row = by_sample[name]
        assert float(row[column["min_score"]]) == calls["min_score"]
        assert row[column["models"]] == "demo"
        assert float(row[column["percent_virus"]]) == pytest.approx(100 * bars[name][0] / sum(bars[name]), abs=0.01)
    assert "DEMO MODELS: scores are meaningless" in (report / "multiqc_report.html").read_text()
