"""``--compile``: one value from the CLI to the engines, in no identity."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from tests.conftest import cli_in_process
from virnucpro.cli.predict import COMPILE_CHOICES
from virnucpro.cli.train import predict_options
from virnucpro.models.fusion import COMPILE_MODES
from virnucpro.pipeline.model_kinds import DNABERT_S, ESM2, EmbedInitArgs
from virnucpro.pipeline.run.setup import ResolvedModels


def test_cli_choices_are_the_engine_modes():
    assert COMPILE_CHOICES == COMPILE_MODES


def test_init_args_round_trip_with_compile():
    args = EmbedInitArgs("/m/esm.pt", "bf16", 4096, "off")
    assert EmbedInitArgs.from_mapping(pickle.loads(pickle.dumps(args.as_mapping()))) == args
    assert args.as_mapping()["compile"] == "off"
    assert EmbedInitArgs("/m", "fp32", None).compile == "auto"


def test_each_kind_passes_the_mode_to_its_workers():
    models = ResolvedModels(Path("e.pt"), Path("d"), Path("c.pt"), {})
    for kind in (DNABERT_S, ESM2):
        assert kind.init_args(models, "fp32", None, "off").compile == "off"
        assert kind.init_args(models, "fp32", None).compile == "auto"


@pytest.mark.parametrize("command", ["predict", "train", "evaluate"])
def test_a_bad_mode_is_a_usage_error(tmp_path, command):
    target = ["in.fa", "-o", str(tmp_path / "out")] if command == "predict" else ["-o", str(tmp_path / "out")]
    code, _, err = cli_in_process(command, *target, "--models", "demo", "--compile", "fast")
    assert code == 2
    assert "--compile" in err and "'fast' is not one of 'auto', 'on', 'off'" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_train_and_evaluate_pass_the_mode_on():
    values = {"chunk_length": None, "esm_model": None, "dnabert_model": None, "dnabert_revision": None,
              "model_set": "demo", "device": "cpu", "precision": "auto", "batch_tokens": None, "offline": False,
              "shard_size": 10, "parallel": False, "gpus": None, "workers": 0, "no_dashboard": True,
              "compile_mode": "off"}
    assert predict_options(values).compile == "off"


@pytest.mark.parametrize("mode", COMPILE_MODES)
def test_workers_load_their_engine_with_the_mode(tmp_path_factory, mode):
    """The init functions hand the mode to the loaders (nothing is compiled before a forward pass)."""
    import torch

    from virnucpro.models.demo import ensure_demo_models
    from virnucpro.models.fusion import compile_unavailable_reason
    from virnucpro.pipeline.parallel import init_dnabert_worker
    from virnucpro.pipeline.parallel_esm import init_esm_worker

    demo = ensure_demo_models(tmp_path_factory.mktemp("cache"))
    dnabert = init_dnabert_worker("cpu", EmbedInitArgs(str(demo.dnabert_dir), "fp32", None, mode).as_mapping())
    assert dnabert.embedder.encoder.compile_mode == mode
    esm = init_esm_worker("cpu", EmbedInitArgs(str(demo.esm_path), "fp32", None, mode).as_mapping())
    assert esm.embedder.compiled == (mode == "on" and compile_unavailable_reason(torch.device("cpu")) is None)


def test_cluster_parts_get_the_mode():
    from virnucpro.cluster.predict_args import predict_argv

    assert predict_argv({"compile_mode": "off"}) == ["--compile", "off"]
    assert predict_argv({"compile_mode": "auto"}) == []
