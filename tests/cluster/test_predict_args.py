"""``slurm submit`` and ``workflow snakemake`` accept every ``predict`` option: passed on to every
part, or (what a batch job decides itself) accepted, ignored and named in a note. Parametrised from
predict's own option list, so a new predict option is covered the day it is added."""

from __future__ import annotations

import io
import shlex
from pathlib import Path

import click
import pytest

from tests.conftest import REPO_ROOT
from virnucpro.cli.main import main
from virnucpro.cli.predict import predict
from virnucpro.cluster.predict_args import COMMAND_OWNED, IGNORED, PATH_VALUED

yaml = pytest.importorskip("yaml")

INPUT = str(REPO_ROOT / "tests" / "data" / "tiny_reference" / "contigs.fa")
OPTIONS = [p for p in predict.params if isinstance(p, click.Option) and p.name not in COMMAND_OWNED]


def sample_args(param: click.Option) -> list[str]:
    """The option with a value that is valid and not its default."""
    flag = max(param.opts, key=len)
    if param.is_flag:
        return [flag]
    kind = param.type
    if isinstance(kind, click.Choice):
        return [flag, next(str(c) for c in kind.choices if str(c) != str(param.default))]
    if isinstance(kind, click.FloatRange):
        low = kind.min or 0.0
        return [flag, str(min(low + 0.25, kind.max) if kind.max is not None else low + 7.5)]
    if isinstance(kind, click.IntRange):
        return [flag, str((kind.min or 0) + 3)]
    values = {"gpus": "0,1", "device": "cpu", "shard_size": "77"}
    return [flag, values.get(param.name or "", f"value-of-{param.name}")]


def run(*args: str) -> tuple[int, str]:
    err = io.StringIO()
    code = main(list(args), stdout=io.StringIO(), stderr=err)
    return code, err.getvalue()


def test_every_predict_option_is_covered() -> None:
    names = {p.name for p in OPTIONS}
    assert {"no_dashboard", "force", "gpus", "parallel", "model_type", "region_gap"} <= names
    assert set(IGNORED) <= names


@pytest.mark.parametrize("param", OPTIONS, ids=lambda p: max(p.opts, key=len))
def test_slurm_submit_takes_the_option(tmp_path: Path, param: click.Option) -> None:
    args = sample_args(param)
    out = tmp_path / "out"
    code, err = run("slurm", "submit", INPUT, "-o", str(out), "-n", "2", "--dry-run", *args)
    assert code == 0, err
    script = (out / "slurm" / "predict.sbatch").read_text()
    [line] = [line for line in script.splitlines() if line.startswith("PREDICT_ARGS=(")]
    check(param, args, shlex.split(line[len("PREDICT_ARGS=("):-1]), err)


@pytest.mark.parametrize("param", OPTIONS, ids=lambda p: max(p.opts, key=len))
def test_workflow_snakemake_takes_the_option(tmp_path: Path, param: click.Option) -> None:
    args = sample_args(param)
    code, err = run("workflow", "snakemake", "-o", str(tmp_path / "wf"), "--input", INPUT, "--parts", "2",
                    "--output-dir", str(tmp_path / "out"), *args)
    assert code == 0, err
    config = yaml.safe_load((tmp_path / "wf" / "config.yaml").read_text())
    check(param, args, config["predict_args"], err)


def check(param: click.Option, args: list[str], passed: list[str], err: str) -> None:
    """Passed on exactly (paths made absolute), or ignored with a note and not passed on."""
    if param.name in IGNORED:
        assert f"{args[0]} is ignored" in err and passed == []
        return
    assert "is ignored" not in err
    if param.name in PATH_VALUED:
        assert passed == args or passed == [args[0], str(Path(args[1]).resolve())]
    else:
        assert passed == args
