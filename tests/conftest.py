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
