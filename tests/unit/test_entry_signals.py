"""A stop signal at any moment of a ``virnucpro`` process gives the documented exit code, also
before the command installed its own handlers (found by ``scripts/chaos.py``: a SIGTERM in
the first half second killed ``predict`` with status -15 instead of exit 143)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT

# Runs ``python -m virnucpro ARGS`` and sends SIGNAL to itself as module TARGET is first imported.
STOPPED_AT_IMPORT = """
import os, runpy, signal, sys
target, signum = sys.argv[1], int(sys.argv[2])
class SignalOnImport:
    def find_spec(self, name, path=None, target_module=None):
        if name == target:
            sys.meta_path.remove(self)
            os.kill(os.getpid(), signum)
        return None
sys.meta_path.insert(0, SignalOnImport())
sys.argv = ["virnucpro", *sys.argv[3:]]
runpy.run_module("virnucpro", run_name="__main__", alter_sys=True)
"""


def run_stopped(target: str, signum: int, tmp_path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    env.setdefault("VIRNUCPRO_CACHE", str(REPO_ROOT / ".pytest_cache" / "virnucpro-cache"))
    source = tmp_path / "in.fa"
    source.write_text(">a\n" + "ACG" * 200 + "\n")
    args = ["predict", str(source), "-o", str(tmp_path / "out"), "--models", "demo", "--device", "cpu"]
    return subprocess.run([sys.executable, "-c", STOPPED_AT_IMPORT, target, str(int(signum)), *args],
                          capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.parametrize(("target", "signum", "code"), [
    ("virnucpro.pipeline.prediction", signal.SIGTERM, 143),  # the command runs, its handlers are not there yet
    ("virnucpro.cli", signal.SIGTERM, 143),  # still importing the command line
    ("virnucpro.cli", signal.SIGINT, 130),
])
def test_a_stop_signal_before_the_command_handles_signals(tmp_path, target, signum, code):
    result = run_stopped(target, signum, tmp_path)
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("virnucpro: interrupted")
    assert not (tmp_path / "out").exists()


def test_the_console_script_is_the_entry_with_the_early_handler():
    text = (REPO_ROOT / "pyproject.toml").read_text()
    assert 'virnucpro = "virnucpro.__main__:run"' in text


# ``virnucpro ARGS``, with an object that sends SIGNAL to the process as the interpreter tears
# its modules down (after the command returned; Python has reset its own handlers by then).
STOPPED_AT_TEARDOWN = """
import os, runpy, signal, sys, time, types
signum = int(sys.argv[1])
class SignalAtTeardown:
    def __del__(self):
        os.kill(os.getpid(), signum)
        time.sleep(0.2)
late = types.ModuleType("late")
late.obj = SignalAtTeardown()
sys.modules["late"] = late
sys.argv = ["virnucpro", *sys.argv[2:]]
runpy.run_module("virnucpro", run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_after_the_command_finished_keeps_its_exit_code(signum):
    """Found by the campaign: a SIGTERM that came as a finished run was exiting gave status -15."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    result = subprocess.run([sys.executable, "-c", STOPPED_AT_TEARDOWN, str(int(signum)), "--help"],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout and "Traceback" not in result.stderr
