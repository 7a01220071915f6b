"""RunConfig: the one source of run.json params and of every stage's reuse identity."""

from __future__ import annotations

import importlib
from pathlib import Path

from virnucpro.pipeline.model_kinds import DNABERT_S, ESM2, MODEL_KINDS, model_kind
from virnucpro.pipeline.outputs import RunPaths
from virnucpro.pipeline.run.config import WORK_FORMAT, RunConfig
from virnucpro.pipeline.run.options import PredictOptions
from virnucpro.pipeline.run.setup import DevicePlan, ResolvedModels

IDENTITIES = {
    "dnabert": {"name": "d", "revision": None, "sha256": "1" * 64, "dim": 48},
    "esm": {"name": "e", "sha256": "2" * 64, "dim": 32},
    "classifier": {"name": "c", "sha256": "3" * 64},
}
MODELS = ResolvedModels(Path("e.pt"), Path("dnabert"), Path("c.pth"), IDENTITIES)


def _config(**options) -> RunConfig:
    plan = DevicePlan(["cpu"], in_process=True, precision="fp32")
    predict_options = PredictOptions("in.fa", "out", **options)
    return RunConfig.build(predict_options, MODELS, plan, "f" * 64, predict_options.shard_size or 10_000)


def test_run_params_hold_everything_that_changes_numbers():
    config = _config(model_type=300, shard_size=50)
    assert config.run_params() == {
        "work_format": WORK_FORMAT, "input_sha256": "f" * 64, "chunk_length": 300, "shard_size": 50,
        "precision": "fp32", "models": IDENTITIES,
    }
    assert _config(chunk_length=200).chunk_length == 200


def test_stage_identities_are_built_from_the_config():
    config = _config()
    assert config.translate_identity() == {"input_sha256": "f" * 64, "chunk_length": 500, "shard_size": 10_000,
                                           "work_format": WORK_FORMAT}
    esm_inputs = {"source_sha256": "a", "reuse_sha256": "r"}
    assert config.feature_identity(ESM2, esm_inputs) == {"model": IDENTITIES["esm"], "precision": "fp32",
                                                         "source_sha256": "a", "reuse_sha256": "r"}
    dna_inputs = {"source_sha256": "n", "reuse_sha256": "m"}
    assert config.score_identity({"dnabert": dna_inputs, "esm": esm_inputs}) == {
        "classifier": IDENTITIES["classifier"],
        "dnabert": config.feature_identity(DNABERT_S, dna_inputs),
        "esm": config.feature_identity(ESM2, esm_inputs),
    }


def test_model_kinds_name_their_files_and_workers():
    paths = RunPaths(Path("out"))
    assert [k.name for k in MODEL_KINDS] == ["dnabert", "esm"]  # the classifier's input order
    assert DNABERT_S.source(paths, 2) == paths.shard_dna(2)
    assert ESM2.features(paths, 2) == paths.esm_features(2)
    assert ESM2.init_args(MODELS, "bf16", None).model_path == "e.pt"
    assert DNABERT_S.dim(IDENTITIES) == 48
    assert model_kind("esm") is ESM2
    for kind in MODEL_KINDS:
        for spec in (kind.worker_init, kind.worker_process):
            module, name = spec.split(":")
            assert callable(getattr(importlib.import_module(module), name))
