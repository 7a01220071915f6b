"""Disk full, file-size limit, read-only: one line, exit 1, every finished shard valid, a re-run completes.

We run as root in CI, where ``chmod`` does not stop writes, so the failures are
real kernel errors: ``RLIMIT_FSIZE`` in the child (writes past the limit fail
with EFBIG once SIGXFSZ is ignored) and, where this process may mount, a
full tmpfs (ENOSPC).
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.helpers.shared_run import SHARD_SIZE, shared_kept_run
from tests.helpers.toy_workers import IDENTITY, write_inputs
from tests.integration.test_predict_fixture import fixture_args
from virnucpro.errors import OutputError
from virnucpro.pipeline.checkpoint import is_temporary, read_done, verify_done
from virnucpro.pipeline.workqueue.manager import BatchQueueManager, TaskFailed

# End-to-end runs in subprocesses: part of `make test`, not of `make test-fast`.
pytestmark = pytest.mark.slow

RESULT_FILES = ("prediction_results.txt", "prediction_results_highestscore.csv", "contig_summary.tsv")
#: Above every shard file of the shared run's shard size (< 15 kB), below prediction_results.txt (~21 kB).
SIZE_LIMIT = 18_000


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("VIRNUCPRO_CACHE", str(REPO_ROOT / ".pytest_cache" / "virnucpro-cache"))
    return env


def file_size_limit(limit: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of death

    return apply


def run_virnucpro(args: list[str], preexec=None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "virnucpro", *args], capture_output=True, text=True,
                          env=cli_env(), preexec_fn=preexec, timeout=300, **kwargs)


def assert_markers_verify(out: Path) -> int:
    markers = list(out.glob("work/**/*.done"))
    for marker in markers:
        result = marker.with_name(marker.name[: -len(".done")])
        assert verify_done(result, read_done(result)["identity"], use_cache=False), result
    assert not [p for p in out.rglob("*") if is_temporary(p)]
    return len(markers)


def assert_one_error_line(stderr: str, names: str) -> str:
    errors = [line for line in stderr.splitlines() if line.startswith("virnucpro: error:")]
    assert len(errors) == 1, stderr
    assert names in errors[0]
    assert "Traceback" not in stderr and "Logging error" not in stderr
    assert "will retry" not in stderr and "re-run the same command to retry" not in stderr
    return errors[0]


# --------------------------------------------------------------------------- the log file


def test_log_file_that_cannot_grow_warns_once_and_the_program_goes_on(tmp_path):
    log = tmp_path / "x.log"
    code = (
        "import logging\n"
        "from virnucpro.log import add_log_file, remove_log_file, setup_console_logging\n"
        "setup_console_logging(0)\n"
        f"handler = add_log_file({str(log)!r})\n"
        "for i in range(300):\n"
        "    logging.getLogger('virnucpro.test').debug('line %d %s', i, 'x' * 40)\n"
        "logging.getLogger('virnucpro.test').info('still running')\n"
        "remove_log_file(handler)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=cli_env(),
                            preexec_fn=file_size_limit(2_000), timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [f"cannot write the log file {log} (File too large); continuing without it",
                                          "still running"]
    assert log.stat().st_size <= 2_000


# --------------------------------------------------------------------------- the work queue


@pytest.mark.parametrize("devices", [["cpu"], ["cpu", "cpu"]], ids=["in-process", "two-workers"])
def test_a_write_error_in_a_task_is_not_retried_and_stops_the_hand_out(tmp_path, devices):
    sizes = {"big": 50, **{f"t{i}": 5 for i in range(5)}}
    tasks = write_inputs(tmp_path, sizes, modes={"big": "write_error"})
    events: list = []
    manager = BatchQueueManager("tests.helpers.toy_workers:square_init", "tests.helpers.toy_workers:square_process",
                                devices, {}, in_process=len(devices) == 1, on_event=events.append)
    report = manager.run(tasks)
    failures = [e for e in events if isinstance(e, TaskFailed)]
    assert [(e.task_key, e.attempt, e.will_retry) for e in failures] == [("big", 1, False)]
    assert report.write_error == f"cannot write {tmp_path / 'big.out'}: No space left on device"
    assert len(report.finished) + len(report.not_run) == 5 and report.not_run
    for key in report.finished:
        assert verify_done(tmp_path / f"{key}.out", IDENTITY)
    with pytest.raises(OutputError, match="No space left on device"):
        report.raise_for_failures("toy")


# --------------------------------------------------------------------------- predict


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory) -> Path:
    return shared_kept_run(tmp_path_factory)


def test_file_size_limit_mid_run_then_rerun_gives_identical_results(tmp_path, clean_run):
    out = tmp_path / "out"
    out.mkdir()
    # A log file already near the limit: the file log fails early, the results later.
    (out / "virnucpro.log").write_text("x" * (SIZE_LIMIT - 1_500) + "\n")
    args = fixture_args(out, "--shard-size", SHARD_SIZE)
    failed = run_virnucpro(args, preexec=file_size_limit(SIZE_LIMIT))
    assert failed.returncode == 1, failed.stderr
    # The assembly walk writes the tables and the viral FASTA together: the largest file (the
    # viral FASTA, written unbuffered) reaches the limit first, and the error names it.
    line = assert_one_error_line(failed.stderr, "viral_contigs.fa")
    assert line.startswith(f"virnucpro: error: cannot write {out / 'viral_contigs.fa'}: File too large; "
                           "finished work is kept, re-run")
    assert failed.stderr.count("cannot write the log file") == 1
    assert not (out / "prediction_results.txt").exists()
    shards = len(list((out / "work" / "shards").glob("*.dna.fa")))
    assert shards > 1
    assert len(list((out / "work" / "scores").glob("*.tsv.done"))) == shards  # every shard finished first
    assert assert_markers_verify(out) >= 3 * shards

    rerun = run_virnucpro(args)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{shards} of {shards} shard(s) already scored and verified" in rerun.stderr
    for name in RESULT_FILES:
        assert (out / name).read_bytes() == (clean_run / name).read_bytes(), name


@pytest.fixture()
def small_tmpfs(tmp_path):
    """An 840 kB tmpfs: the shard files and reuse plans fit, the features do not (needs root with
    CAP_SYS_ADMIN; skipped elsewhere)."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tmpfs needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=840k", "tmpfs", str(mount_point)],
                             capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_disk_full_then_read_only_are_one_line_and_keep_finished_shards(small_tmpfs):
    out = small_tmpfs / "out"
    args = fixture_args(out, "--shard-size", SHARD_SIZE)
    failed = run_virnucpro(args)
    assert failed.returncode == 1, failed.stderr
    line = assert_one_error_line(failed.stderr, "No space left on device")
    assert ".safetensors" in line or ".done" in line
    kept = assert_markers_verify(out)
    assert kept > 0
    assert not (out / "prediction_results.txt").exists()

    subprocess.run(["mount", "-o", "remount,ro", str(small_tmpfs)], check=True)
    read_only = run_virnucpro(args)
    assert read_only.returncode == 1, read_only.stderr
    assert_one_error_line(read_only.stderr, "Read-only file system")
    assert assert_markers_verify(out) == kept


def test_plot_and_export_onto_a_read_only_filesystem(small_tmpfs, clean_run):
    subprocess.run(["mount", "-o", "remount,ro", str(small_tmpfs)], check=True)
    for args, name in ((["plot", str(clean_run), "-o", str(small_tmpfs / "p.png")], "p.png"),
                       (["features", "export", str(clean_run), "-o", str(small_tmpfs / "f")], "f")):
        if args[0] == "plot":
            pytest.importorskip("matplotlib")
        result = run_virnucpro(args)
        assert result.returncode == 1, result.stderr
        line = assert_one_error_line(result.stderr, str(small_tmpfs / name))
        assert line.endswith("Read-only file system")
