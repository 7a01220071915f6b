"""Checks before a predict run, the one-line changed-settings text, what --force removes,
and that the help, the README and errors.EXIT_CODES list the same exit codes."""

from __future__ import annotations

import logging
import re

import pytest

from tests.conftest import REPO_ROOT, TINY_REF, cli_in_process
from virnucpro.errors import EXIT_CODES, ModelNotAvailableError, UsageError, exit_code_for_signal
from virnucpro.pipeline.checkpoint import wipe_run_state
from virnucpro.pipeline.outputs import RunPaths
from virnucpro.pipeline.run.checks import MIN_CHUNK_LENGTH, check_options
from virnucpro.pipeline.run.config import RunConfig
from virnucpro.pipeline.run.options import PredictOptions


def options(**kwargs) -> PredictOptions:
    return PredictOptions(input_path="in.fa", output_dir="out", **kwargs)


def test_short_chunk_length_needs_the_allow_flag():
    with pytest.raises(UsageError, match="--allow-chunk-length"):
        check_options(options(chunk_length=MIN_CHUNK_LENGTH - 1))
    check_options(options(chunk_length=3, allow_chunk_length=True))
    check_options(options(chunk_length=MIN_CHUNK_LENGTH, models="demo"))


def test_keep_and_discard_features_contradict():
    with pytest.raises(UsageError, match="contradict"):
        check_options(options(keep_features=True, discard_features=True))


def test_other_chunk_length_than_the_published_classifier_warns(caplog):
    with caplog.at_level(logging.WARNING):
        check_options(options(chunk_length=300))  # the 500 model
    assert "trained on" in caplog.text and "-m 300" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        check_options(options(chunk_length=300, model_type=300))
        check_options(options(chunk_length=300, model_path="mine.pth"))  # its training length is unknown
    assert caplog.text == ""


def params(**changes) -> dict:
    base = {
        "work_format": 1, "input_sha256": "a" * 64, "chunk_length": 500, "shard_size": 10000, "precision": "fp32",
        "models": {
            "esm": {"name": "esm2_t36_3B_UR50D", "sha256": "b" * 64, "dim": 2560},
            "dnabert": {"name": "zhihan1996/DNABERT-S", "revision": None, "sha256": "c" * 64, "dim": 768},
            "classifier": {"name": "500_model.pth", "sha256": "d" * 64},
        },
    }
    for key, value in changes.items():
        if key in base["models"]:
            base["models"][key] = {**base["models"][key], **value}
        else:
            base[key] = value
    return base


def test_describe_differences_names_each_setting_once():
    describe = RunConfig.describe_differences
    assert describe(params(), params()) == []
    assert describe(params(), params(chunk_length=300, precision="bf16")) == [
        "--chunk-length: 500 -> 300", "--precision: fp32 -> bf16"]
    assert describe(params(), params(esm={"name": "esm2_t6_8M_UR50D", "sha256": "e" * 64})) == [
        "esm model: esm2_t36_3B_UR50D -> esm2_t6_8M_UR50D"]
    changed_file = describe(params(), params(classifier={"sha256": "f" * 64}))
    assert changed_file == [f"classifier model file 500_model.pth changed (sha256 {'d' * 12}... -> {'f' * 12}...)"]
    assert describe(params(), params(input_sha256="9" * 64)) == [
        f"input: another file or content (sha256 {'a' * 12}... -> {'9' * 12}...)"]


def test_force_removes_our_files_and_exports_but_not_the_users(tmp_path):
    paths = RunPaths(tmp_path)
    for name in ("run.json", "prediction_results.txt", "NOTICE.txt", "notes.txt"):
        (tmp_path / name).write_text("x")
    (tmp_path / "work" / "features").mkdir(parents=True)
    (tmp_path / "work" / "features" / "KEPT").write_text("x")
    export = tmp_path / "features"
    export.mkdir()
    for name in ("esm_embeddings.npy", "esm_ids.txt", "dnabert_embeddings.tsv"):
        (export / name).write_text("x")
    removed = wipe_run_state(tmp_path, paths.state_names(), paths.derived_names(("dnabert", "esm")))
    assert {p.relative_to(tmp_path).as_posix() for p in removed} == {
        "run.json", "prediction_results.txt", "NOTICE.txt", "work",
        "features/esm_embeddings.npy", "features/esm_ids.txt", "features/dnabert_embeddings.tsv"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]  # the emptied export dir went too

    export.mkdir()
    (export / "esm_ids.txt").write_text("x")
    (export / "mine.txt").write_text("x")
    wipe_run_state(tmp_path, paths.state_names(), paths.derived_names(("esm",)))
    assert sorted(p.name for p in export.iterdir()) == ["mine.txt"]


def test_readme_exit_code_table_equals_exit_codes():
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split("## Exit codes\n", 1)[1].split("\n## ", 1)[0]
    rows = dict(re.findall(r"^\| (\d+) \| (.+) \|$", section, flags=re.MULTILINE))
    assert {int(code): text for code, text in rows.items()} == EXIT_CODES


def test_top_level_help_lists_every_exit_code_and_no_rst_markup():
    code, out, _err = cli_in_process("--help")
    assert code == 0
    assert "``" not in out
    for number, text in EXIT_CODES.items():
        assert re.search(rf"^\s+{number}\s+", out, flags=re.MULTILINE), number
        assert text.split(" (")[0][:30] in " ".join(out.split()), text


def test_sigterm_and_sigint_exit_codes():
    import signal

    assert exit_code_for_signal(signal.SIGTERM) == 143
    assert exit_code_for_signal(signal.SIGINT) == 130
    assert exit_code_for_signal(None) == 130


def test_truncated_classifier_names_the_file(tmp_path):
    from virnucpro.models.classifier import load_classifier

    original = (TINY_REF / "models" / "classifier_tiny.pth").read_bytes()
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(original[: len(original) // 3])
    with pytest.raises(ModelNotAvailableError) as info:
        load_classifier(truncated)
    message = str(info.value)
    assert str(truncated) in message and "\n" not in message


def test_truncated_legacy_pickle_names_the_file(tmp_path):
    import pickle

    from virnucpro.models.classifier import load_classifier

    path = tmp_path / "legacy.pth"
    path.write_bytes(pickle.dumps({"weights": list(range(50))})[:20])
    with pytest.raises(ModelNotAvailableError) as info:
        load_classifier(path)
    assert str(info.value).startswith(f"{path}: not a readable checkpoint (damaged or truncated pickle")
