"""`virnucpro plot` on a real predict run of the fixture models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, run_cli
from tests.conftest import cli_in_process as cli
from tests.helpers.shared_run import shared_kept_run

# End-to-end runs in subprocesses: part of `make test`, not of `make test-fast`.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    return shared_kept_run(tmp_path_factory)


def test_default_is_a_pdf_in_the_run_directory(run):
    pytest.importorskip("matplotlib")
    result = run_cli("plot", str(run))
    assert result.returncode == 0, result.stderr.decode()
    target = run / "plots.pdf"
    assert result.stdout.decode().strip() == str(target)
    assert target.read_bytes()[:5] == b"%PDF-"
    assert result.stderr.decode() == ""


def test_png_of_chosen_ids(run, tmp_path):
    pytest.importorskip("matplotlib")
    ids = [line.split("\t")[0] for line in (run / "contig_summary.tsv").read_text().splitlines()[1:]]
    no_frame = [line.split("\t")[0] for line in (run / "contig_summary.tsv").read_text().splitlines()
                if "\tno_kept_frame\t" in line]
    code, out, err = cli("plot", str(run), "-o", str(tmp_path / "two.png"), "--ids", f"{ids[3]},{no_frame[0]}")
    assert code == 0, err
    png = (tmp_path / "two.png").read_bytes()
    assert png[:4] == b"\x89PNG"
    assert int.from_bytes(png[20:24], "big") > 2 * 1.5 * 150


@pytest.mark.parametrize(
    ("args", "code", "text"),
    [
        (["--ids", "no_such_contig"], 2, "no_such_contig"),
        (["--top", "3", "--ids", "x"], 2, "either --top or --ids"),
        (["-o", "plot.jpg"], 2, "unknown plot format"),
    ],
)
def test_usage_errors_are_one_line(run, tmp_path, args, code, text):
    pytest.importorskip("matplotlib")
    argv = ["plot", str(run), *args]
    if "-o" in argv:
        argv[argv.index("-o") + 1] = str(tmp_path / "plot.jpg")
    got, out, err = cli(*argv)
    assert got == code
    assert text in err
    assert "Traceback" not in err


def test_not_a_run_directory(tmp_path):
    pytest.importorskip("matplotlib")
    code, _, err = cli("plot", str(tmp_path))
    assert code == 3
    assert err.count("\n") == 1 and "not a finished virnucpro predict run" in err


def test_without_matplotlib_says_how_to_install(run, tmp_path):
    shadow = tmp_path / "shadow" / "matplotlib"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('No module named matplotlib (shadowed by the test)')\n")
    result = run_cli("plot", str(run), "-o", str(tmp_path / "x.png"), env={"PYTHONPATH": f"{shadow.parent}{os.pathsep}{REPO_ROOT}"})
    stderr = result.stderr.decode()
    assert result.returncode == 1
    assert stderr.strip() == "virnucpro: error: plotting needs matplotlib, an optional extra: pip install 'virnucpro[plot]'"
    assert not (tmp_path / "x.png").exists()
