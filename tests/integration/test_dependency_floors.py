"""The declared dependency floors, tested at the floor where an older version would break us.

Each floor version is installed with ``pip install --target`` into a temporary
directory that comes first on a child process's ``sys.path``:

* ``huggingface_hub`` (its ``errors`` module, ``snapshot_download``,
  ``list_repo_files``, ``scan_cache_dir`` and resuming its own partial files):
  the registry fetches DNABERT-S from a hub mirror on 127.0.0.1 (``HF_ENDPOINT``)
  through a failing request and a cut transfer, then finds it offline and lists it;
* ``isal`` and ``zstandard``: the compression tests run against them.

The floors are read from pyproject.toml, so raising one there tests the new one.
A test skips (saying why) only when the package index cannot be reached.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.helpers.range_server import range_server, serve_hub_repo
from tests.unit.test_downloads import check_hub_download, hub_files, run_hub_client

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

_UNREACHABLE = (
    "NewConnectionError", "Temporary failure in name resolution", "Network is unreachable", "Max retries exceeded",
    "ConnectTimeout", "ProxyError", "Could not fetch URL", "connection refused", "Connection refused",
)


def declared_floor(package: str) -> str:
    """The ``>=`` version of ``package`` in pyproject.toml's dependencies."""
    text = (REPO_ROOT / "pyproject.toml").read_text()
    match = re.search(rf'^\s*"{re.escape(package)}>=([0-9][0-9.]*)', text, re.MULTILINE)
    assert match, f"{package} has no floor in pyproject.toml"
    return match.group(1)


def same_version(found: str, floor: str) -> bool:
    """``1.1.0`` is ``1.1`` (missing parts count as zeros)."""
    a, b = found.split("."), floor.split(".")
    width = max(len(a), len(b))
    return a + ["0"] * (width - len(a)) == b + ["0"] * (width - len(b))


def install_at_floor(package: str, target: Path, *, with_deps: bool) -> str:
    """``pip install --target target package==floor`` (wheels only); skip when the index is unreachable."""
    floor = declared_floor(package)
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--only-binary=:all:",
               "--target", str(target), f"{package}=={floor}"]
    if not with_deps:
        command.insert(4, "--no-deps")
    proc = subprocess.run(command, capture_output=True, text=True, timeout=400)
    if proc.returncode != 0:
        output = (proc.stdout + proc.stderr).strip()
        last = output.splitlines()[-1] if output else f"exit status {proc.returncode}"
        if any(marker in output for marker in _UNREACHABLE):
            pytest.skip(f"the package index is unreachable, so {package}=={floor} cannot be installed: {last}")
        pytest.fail(f"pip could not install {package}=={floor}: {output[-2000:]}")
    return floor


def test_huggingface_hub_at_its_floor(tmp_path):
    target = tmp_path / "floor"
    floor = install_at_floor("huggingface_hub", target, with_deps=True)
    files = hub_files()
    www = tmp_path / "www"
    www.mkdir()
    with range_server(www) as served:
        serve_hub_repo(served, "lab/DNABERT-S", files)
        served.faults.fail_next, served.faults.fail_path_suffix = 1, "/tree/main"
        served.faults.drop_after, served.faults.drop_path_suffix = 15 << 20, "/pytorch_model.bin"
        report = run_hub_client(served.base_url, tmp_path / "hf", "lab/DNABERT-S",
                                os.pathsep.join([str(target), str(REPO_ROOT)]))
        assert same_version(report["version"], floor) and report["module"].startswith(str(target))
        check_hub_download(served, report, files)


def test_isal_and_zstandard_at_their_floors(tmp_path):
    target = tmp_path / "floor"
    isal_floor = install_at_floor("isal", target, with_deps=False)
    zstd_floor = install_at_floor("zstandard", target, with_deps=False)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), str(REPO_ROOT)])}
    env.pop("VIRNUCPRO_NO_ISAL", None)
    versions = subprocess.run(
        [sys.executable, "-c", "import isal, zstandard; print(isal.__version__, zstandard.__version__)"],
        env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    found = versions.stdout.split()
    assert len(found) == 2 and same_version(found[0], isal_floor) and same_version(found[1], zstd_floor), versions
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(REPO_ROOT / "tests" / "unit" / "test_compression.py")],
        env=env, capture_output=True, text=True, timeout=400, cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and "skipped" not in proc.stdout
