"""Shared fixtures: paths to the reference data and a helper to run the CLI in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = REPO_ROOT / "tests" / "data"
TINY_REF = DATA_DIR / "tiny_reference"


def read_small_fasta(path: Path) -> tuple[list[str], list[str]]:
    """IDs and sequences of a small FASTA file (a test-side parser independent of virnucpro's)."""
    ids: list[str] = []
    seqs: list[str] = []
    for line in Path(path).read_text().splitlines():
        if line.startswith(">"):
            ids.append(line[1:].split()[0])
            seqs.append("")
        elif line.strip():
            seqs[-1] += line.strip()
    return ids, seqs


def host_resolves(host: str) -> bool:
    """True when ``host`` has a DNS answer (then a test would really download: it skips)."""
    import socket

    try:
        socket.getaddrinfo(host, 443)
        return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def tiny_ref() -> Path:
    """The published tool's outputs on tiny random models (copied from ../shared/fixtures)."""
    return TINY_REF


def cli_in_process(*args: str) -> tuple[int, str, str]:
    """Run the CLI in this process through ``main(argv, stdout, stderr)``: (exit code, stdout, stderr)."""
    import io

    from virnucpro.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    code = main(list(args), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def run_cli(*args: str, input: bytes | None = None, env: dict | None = None, timeout: float = 600, cwd=None):
    """Run ``python -m virnucpro ARGS`` in a subprocess; returns CompletedProcess with bytes stdout/stderr."""
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + full_env.get("PYTHONPATH", "")
    full_env.setdefault("VIRNUCPRO_CACHE", str(REPO_ROOT / ".pytest_cache" / "virnucpro-cache"))
    if env:
        full_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "virnucpro", *args],
        input=input,
        capture_output=True,
        env=full_env,
        timeout=timeout,
        cwd=cwd,
    )


def one_error_line(stderr: bytes) -> str:
    """The one ``virnucpro: error:`` line of a failed run's stderr (and no traceback)."""
    text = stderr.decode()
    assert "Traceback" not in text
    errors = [line for line in text.splitlines() if line.startswith("virnucpro: error:")]
    assert len(errors) == 1, text
    return errors[0]


@pytest.fixture(autouse=True)
def _isolate_process_state():
    """Each test leaves the pytest process as it found it.

    Code run in-process can change what later tests inherit: ``main()`` turns the
    ``virnucpro`` logger's propagation off (caplog then sees nothing), and an
    in-process worker sets ``OMP_NUM_THREADS``/``MKL_NUM_THREADS``, which every later
    ``run_cli`` subprocess would inherit (another thread count, other FP32 digits).
    """
    environ = dict(os.environ)
    yield
    from virnucpro.log import reset_logging

    reset_logging()
    if dict(os.environ) != environ:
        os.environ.clear()
        os.environ.update(environ)
