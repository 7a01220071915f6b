"""Inputs that are not plain regular files: RNA, named pipes, process substitution, closed stdin.

Every case runs the real CLI in a subprocess on the tiny reference contigs.
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, run_cli

SUFFIXES = ("_chunked500.fa", "_identified_nucleotide.fa", "_identified_protein.faa")


def outputs(directory: Path, stem: str) -> list[bytes]:
    return [(directory / f"{stem}{suffix}").read_bytes() for suffix in SUFFIXES]


@pytest.fixture(scope="module")
def dna_run(tmp_path_factory: pytest.TempPathFactory, tiny_ref: Path) -> Path:
    """``translate`` of the reference contigs from a regular file: what every other way must give."""
    out = tmp_path_factory.mktemp("dna")
    proc = run_cli("translate", str(tiny_ref / "contigs.fa"), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    return out


def env_with_repo() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("VIRNUCPRO_CACHE", str(REPO_ROOT / ".pytest_cache" / "virnucpro-cache"))
    return env


def test_rna_gives_the_frames_of_its_dna(tmp_path: Path, tiny_ref: Path, dna_run: Path) -> None:
    lines = (tiny_ref / "contigs.fa").read_text().splitlines(keepends=True)
    rna = "".join(line if line.startswith(">") else line.replace("T", "U").replace("t", "u") for line in lines)
    source = tmp_path / "contigs.fa"
    source.write_text(rna)
    proc = run_cli("translate", str(source), "-o", str(tmp_path / "out"))
    err = proc.stderr.decode()
    assert proc.returncode == 0, err
    assert outputs(tmp_path / "out", "contigs") == outputs(dna_run, "contigs")
    rna_lines = [line for line in err.splitlines() if "RNA" in line]
    assert len(rna_lines) == 1, err  # said once, not once per record
    assert "is RNA (holds U): U is read as T" in rna_lines[0]


def test_named_pipe(tmp_path: Path, tiny_ref: Path, dna_run: Path) -> None:
    """A real FIFO fed gzip data by a writer thread: read once, compression sniffed without seeking."""
    fifo = tmp_path / "contigs.fa.gz"
    os.mkfifo(fifo)
    data = gzip.compress((tiny_ref / "contigs.fa").read_bytes())

    def feed() -> None:
        with open(fifo, "wb") as handle:  # blocks until the CLI opens the pipe
            for i in range(0, len(data), 1000):
                handle.write(data[i : i + 1000])

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    proc = run_cli("translate", str(fifo), "-o", str(tmp_path / "out"), timeout=120)
    writer.join(timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert outputs(tmp_path / "out", "contigs") == outputs(dna_run, "contigs")


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash for process substitution")
def test_process_substitution(tmp_path: Path, tiny_ref: Path, dna_run: Path) -> None:
    packed = tmp_path / "contigs.fa.gz"
    packed.write_bytes(gzip.compress((tiny_ref / "contigs.fa").read_bytes()))
    script = f'"{sys.executable}" -m virnucpro translate <(zcat "{packed}") -o "{tmp_path / "out"}"'
    proc = subprocess.run(["bash", "-c", script], capture_output=True, env=env_with_repo(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert outputs(tmp_path / "out", "stream") == outputs(dna_run, "contigs")  # /dev/fd/N -> stem "stream"


@pytest.mark.parametrize("command", [["translate", "-"], ["predict", "-", "--models", "demo"]])
def test_closed_stdin_is_an_input_error(tmp_path: Path, command: list[str]) -> None:
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "virnucpro", *command, "-o", str(out)],
        capture_output=True, env=env_with_repo(), timeout=300,
        preexec_fn=lambda: os.close(0),  # as `virnucpro ... <&-`
    )
    err = proc.stderr.decode()
    assert proc.returncode == 3, err
    errors = [line for line in err.splitlines() if line.startswith("virnucpro:")]
    assert errors == ["virnucpro: error: <stdin>: standard input is closed; give an input file, or pipe data in"], err
    assert "Traceback" not in err and "Error:" not in err


def test_empty_stdin_fails_like_an_empty_file_before_anything(tmp_path: Path) -> None:
    """An empty pipe is refused as the empty file is: same error, same exit code, nothing loaded,
    no output directory (so no half-made run to resume)."""
    empty = tmp_path / "empty.fa"
    empty.write_bytes(b"")
    runs = {
        "file": run_cli("predict", str(empty), "-o", str(tmp_path / "from-file"), "--models", "demo", "-v"),
        "stdin": run_cli("predict", "-", "-o", str(tmp_path / "from-stdin"), "--models", "demo", "-v", input=b""),
    }
    for name, proc in runs.items():
        err = proc.stderr.decode()
        assert proc.returncode == 3, err
        assert [line for line in err.splitlines() if line.startswith("virnucpro: error:")] == [
            f"virnucpro: error: {empty if name == 'file' else '<stdin>'}: the input is empty"], err
        assert "demo" not in err.lower() and "DNABERT" not in err and "device" not in err, err  # no model loaded
        assert not (tmp_path / f"from-{name}").exists()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash for process substitution")
def test_predict_from_process_substitution(tmp_path: Path, tiny_ref: Path) -> None:
    source = tiny_ref / "contigs.fa"
    regular = run_cli("predict", str(source), "-o", str(tmp_path / "file"), "--models", "demo", "--no-dashboard")
    assert regular.returncode == 0, regular.stderr
    script = (
        f'"{sys.executable}" -m virnucpro predict <(cat "{source}") -o "{tmp_path / "pipe"}" '
        "--models demo --no-dashboard"
    )
    proc = subprocess.run(["bash", "-c", script], capture_output=True, env=env_with_repo(), timeout=300)
    assert proc.returncode == 0, proc.stderr
    for name in ("prediction_results.txt", "contig_summary.tsv"):
        assert (tmp_path / "pipe" / name).read_bytes() == (tmp_path / "file" / name).read_bytes()
