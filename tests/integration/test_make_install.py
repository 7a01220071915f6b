"""The first ``make demo`` shows only the tool's output and pip's own: no setuptools banner."""

from __future__ import annotations

import os
import re
import subprocess
import venv
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow


def makefile_variable(name: str) -> str:
    text = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    return re.search(rf"^{name}\s*:?=\s*(.+)$", text, re.M).group(1).strip()


def test_editable_install_line_prints_no_setuptools_banner(tmp_path: Path) -> None:
    """The Makefile's editable install (its environment, pip --quiet) into a fresh venv is silent;
    without that environment the same install prints setuptools' banner (so the test can fail)."""
    text = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    line = next(line for line in text.splitlines() if "pip install --quiet -e" in line)
    assert line.strip().startswith("$(QUIET_EDITABLE)")
    name, _, value = makefile_variable("QUIET_EDITABLE").partition("=")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = str(env_dir / "bin" / "python")
    upgraded = subprocess.run([python, "-m", "pip", "install", "--quiet", "--upgrade", "pip"],
                              capture_output=True, text=True, timeout=300)
    if upgraded.returncode != 0:
        pytest.skip(f"no package index reachable: {upgraded.stderr[-200:]}")
    source = tmp_path / "src"
    subprocess.run(["git", "clone", "-q", str(REPO_ROOT), str(source)], check=True, timeout=120)
    outputs = {}
    for quiet in (False, True):
        env = dict(os.environ)
        env.pop("PYTHONWARNINGS", None)
        if quiet:
            env[name] = value.strip('"')
        subprocess.run([python, "-m", "pip", "uninstall", "-y", "-q", "virnucpro"], capture_output=True, timeout=120)
        done = subprocess.run([python, "-m", "pip", "install", "--quiet", "--no-deps", "-e", str(source)],
                              capture_output=True, text=True, env=env, timeout=600)
        if done.returncode != 0:
            pytest.skip(f"the build backend could not be installed: {done.stderr[-200:]}")
        outputs[quiet] = done.stdout + done.stderr
    assert "Editable installation" in outputs[False]
    assert "Editable installation" not in outputs[True] and "!!" not in outputs[True], outputs[True]
