"""-v/-vv, -q and --log-file work before and after the command, for every command."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from tests.conftest import cli_in_process, run_cli

DEBUG_PREFIX = "INFO virnucpro.pipeline.stages.frames: translate "  # the -v console format names the logger


def translate(tmp_path: Path, tiny_ref: Path, *options: str, after: bool = True):
    args = ["translate", str(tiny_ref / "contigs.fa"), "-o", str(tmp_path / "out")]
    return run_cli(*(args + list(options) if after else list(options) + args))


@pytest.mark.parametrize("after", [False, True], ids=["before", "after"])
def test_verbose_before_or_after(tmp_path: Path, tiny_ref: Path, after: bool) -> None:
    proc = translate(tmp_path, tiny_ref, "-v", after=after)
    err = proc.stderr.decode()
    assert proc.returncode == 0, err
    assert DEBUG_PREFIX in err


def test_counts_add_up_and_vv_works_after(tmp_path: Path, tiny_ref: Path) -> None:
    proc = run_cli("-v", "translate", str(tiny_ref / "contigs.fa"), "-o", str(tmp_path / "a"), "-vv")
    assert proc.returncode == 0 and DEBUG_PREFIX in proc.stderr.decode()


def test_quiet_after(tmp_path: Path, tiny_ref: Path) -> None:
    proc = translate(tmp_path, tiny_ref, "-q")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == b""
    assert (tmp_path / "out" / "contigs_identified_protein.faa").exists()


@pytest.mark.parametrize("options", [["-q", "-v"], ["-vq"]])
def test_quiet_and_verbose_after_is_a_usage_error(tmp_path: Path, tiny_ref: Path, options: list[str]) -> None:
    proc = translate(tmp_path, tiny_ref, *options)
    assert proc.returncode == 2
    assert "-v/--verbose and -q/--quiet cannot be used together" in proc.stderr.decode()


def test_quiet_before_and_verbose_after_conflict(tmp_path: Path, tiny_ref: Path) -> None:
    proc = run_cli("-q", "translate", str(tiny_ref / "contigs.fa"), "-o", str(tmp_path / "o"), "-v")
    assert proc.returncode == 2
    assert "cannot be used together" in proc.stderr.decode()


def test_log_file_after(tmp_path: Path, tiny_ref: Path) -> None:
    log = tmp_path / "logs" / "run.log"
    proc = translate(tmp_path, tiny_ref, "--log-file", str(log))
    assert proc.returncode == 0, proc.stderr
    text = log.read_text()
    assert "DEBUG" in text or "INFO" in text
    assert "160 records (0 empty skipped)" in text


def test_predict_accepts_verbose_after(tmp_path: Path) -> None:
    """The option is parsed (no 'no such option'), then the missing input is the error (exit 3)."""
    proc = run_cli("predict", str(tmp_path / "missing.fa"), "-o", str(tmp_path / "o"), "-v")
    err = proc.stderr.decode()
    assert proc.returncode == 3, err
    assert "no such file" in err and "No such option" not in err


@pytest.mark.parametrize("args", [["models", "list", "-v"], ["models", "-q", "list"], ["models", "list", "-q"]])
def test_nested_group(args: list[str], tmp_path: Path) -> None:
    proc = run_cli(*args, env={"VIRNUCPRO_CACHE": str(tmp_path), "TORCH_HOME": str(tmp_path),
                               "HF_HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    assert b"No such option" not in proc.stderr


def all_command_paths() -> list[list[str]]:
    from virnucpro.cli.main import LAZY_COMMANDS, cli

    paths: list[list[str]] = []
    ctx = click.Context(cli)
    for name in sorted(LAZY_COMMANDS):
        command = cli.get_command(ctx, name)
        paths.append([name])
        if isinstance(command, click.Group):
            paths.extend([name, sub] for sub in sorted(command.commands))
    return paths


@pytest.mark.parametrize("path", all_command_paths(), ids=" ".join)
def test_every_help_lists_the_global_options(path: list[str]) -> None:
    code, out, err = cli_in_process(*path, "--help")
    assert code == 0, err
    for option in ("-v, --verbose", "-q, --quiet", "--log-file FILE"):
        assert option in out, f"{' '.join(path)} --help lacks {option}"
    assert "also accepted before the command" in out


def test_top_level_help_says_after() -> None:
    code, out, _ = cli_in_process("--help")
    assert code == 0
    assert "also accepted after the command" in out
