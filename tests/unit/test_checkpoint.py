"""Atomic writes, .done markers, run.json and the output-directory lock."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from virnucpro.errors import OutputError, RunConfigMismatchError, VirnucproError
from virnucpro.pipeline.checkpoint import (
    LOCK_NAME,
    RUN_JSON,
    atomic_torch_save,
    atomic_write,
    atomic_write_text,
    check_or_write_run_json,
    clean_temporaries,
    done_path,
    hash_input,
    is_temporary,
    output_dir_lock,
    read_done,
    remove_result,
    temp_name_for,
    verify_done,
    write_done,
)
from virnucpro.pipeline.outputs import RunPaths

IDENTITY = {"model": "esm2_t36_3B", "sha256": "abc", "precision": "bf16"}


def _result(tmp_path: Path, data: bytes = b"x" * 1000) -> Path:
    path = atomic_write(tmp_path / "1.esm.pt", data)
    write_done(path, IDENTITY, frames=7)
    return path


def test_atomic_write_bytes_writer_and_text(tmp_path: Path) -> None:
    assert atomic_write(tmp_path / "a", b"abc").read_bytes() == b"abc"
    assert atomic_write(tmp_path / "a", lambda f: f.write(b"new")).read_bytes() == b"new"
    assert atomic_write_text(tmp_path / "t.txt", "héllo\n").read_text(encoding="utf-8") == "héllo\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "t.txt"]  # no temp left


def test_failed_writer_keeps_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = atomic_write(tmp_path / "r.bin", b"old")

    def half_then_fail(handle):
        handle.write(b"partial")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        atomic_write(target, half_then_fail)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["r.bin"]


def test_unwritable_directory_is_a_one_line_output_error(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="cannot write"):
        atomic_write(tmp_path / "missing-dir" / "f", b"x")


def test_atomic_torch_save_round_trip(tmp_path: Path) -> None:
    import torch

    tensor = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    path = atomic_torch_save({"ids": ["a", "b"], "x": tensor}, tmp_path / "f.pt")
    loaded = torch.load(path, weights_only=True)
    assert loaded["ids"] == ["a", "b"] and torch.equal(loaded["x"], tensor)


def test_clean_temporaries_removes_only_temp_names(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    keep = [tmp_path / "1.esm.pt", tmp_path / ".hidden", tmp_path / "x.tmp-1-abcdef12", tmp_path / "sub" / "r.tsv"]
    for path in keep:
        path.write_text("k")
    temps = [temp_name_for(tmp_path / "1.esm.pt"), temp_name_for(tmp_path / "sub" / "r.tsv")]
    for path in temps:
        path.write_text("partial")
    assert all(is_temporary(p) for p in temps) and not any(is_temporary(p) for p in keep)
    assert sorted(clean_temporaries(tmp_path)) == sorted(temps)
    assert all(p.exists() for p in keep) and not any(p.exists() for p in temps)


def test_done_marker_records_size_hash_frames_identity(tmp_path: Path) -> None:
    path = _result(tmp_path)
    marker = read_done(path)
    assert marker is not None and done_path(path).name == "1.esm.pt.done"
    assert marker["size"] == 1000 and marker["frames"] == 7 and marker["identity"] == IDENTITY
    assert len(marker["sha256"]) == 64
    assert verify_done(path, IDENTITY)
    assert verify_done(path, dict(reversed(list(IDENTITY.items()))))  # key order does not matter


def test_verify_fails_without_marker_or_with_garbage_marker(tmp_path: Path) -> None:
    path = atomic_write(tmp_path / "r", b"data")
    assert not verify_done(path, IDENTITY)
    done_path(path).write_text("{not json")
    assert not verify_done(path, IDENTITY)


def test_verify_fails_on_truncated_or_corrupted_file(tmp_path: Path) -> None:
    path = _result(tmp_path)
    with open(path, "r+b") as handle:
        handle.truncate(500)
    assert not verify_done(path, IDENTITY)

    path = _result(tmp_path, b"y" * 1000)
    st = path.stat()
    with open(path, "r+b") as handle:  # same size, one byte flipped, mtime restored
        handle.seek(10)
        handle.write(b"z")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert not verify_done(path, IDENTITY, use_cache=False)

    remove_result(path)
    assert not path.exists() and not done_path(path).exists()


def test_verify_fails_on_identity_mismatch(tmp_path: Path) -> None:
    path = _result(tmp_path)
    assert not verify_done(path, {**IDENTITY, "precision": "fp32"})
    assert not verify_done(path, {k: v for k, v in IDENTITY.items() if k != "sha256"})


def test_verify_fails_when_file_is_gone(tmp_path: Path) -> None:
    path = _result(tmp_path)
    path.unlink()
    assert not verify_done(path, IDENTITY)


#: What --force may remove, as predict passes it (the layout lives in outputs.py).
STATE = RunPaths(Path(".")).state_names()
PARAMS = {"input_sha256": "f" * 64, "chunk_length": 500, "precision": "bf16", "esm_model": "esm2_t36_3B"}


def test_run_json_first_run_then_resume(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert check_or_write_run_json(out, PARAMS, state_names=STATE) == "new"
    stored = json.loads((out / RUN_JSON).read_text())
    assert stored["params"] == PARAMS and "virnucpro_version" in stored
    assert check_or_write_run_json(out, dict(PARAMS), state_names=STATE) == "resume"


def test_run_json_mismatch_names_the_difference(tmp_path: Path) -> None:
    check_or_write_run_json(tmp_path, PARAMS, state_names=STATE)
    with pytest.raises(RunConfigMismatchError) as info:
        check_or_write_run_json(tmp_path, {**PARAMS, "chunk_length": 300, "new_knob": True}, state_names=STATE)
    message = str(info.value)
    assert "chunk_length: 500 -> 300" in message and "new_knob: (absent) -> true" in message
    assert "--force" in message and "-o" in message and "\n" not in message


def test_force_wipes_only_run_state(tmp_path: Path) -> None:
    check_or_write_run_json(tmp_path, PARAMS, state_names=STATE)
    for name in ("shards", "features", "scores"):
        (tmp_path / "work" / name).mkdir(parents=True)
        (tmp_path / "work" / name / "1.x").write_text("old")
    (tmp_path / "prediction_results.txt").write_text("old result")
    (tmp_path / "my_notes.txt").write_text("keep me")
    (tmp_path / "virnucpro.log").write_text("log")
    temp_name_for(tmp_path / "prediction_results.txt").write_text("partial")
    assert check_or_write_run_json(tmp_path, {**PARAMS, "chunk_length": 300}, force=True, state_names=STATE) == "forced"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my_notes.txt", RUN_JSON, "virnucpro.log"]
    assert json.loads((tmp_path / RUN_JSON).read_text())["params"]["chunk_length"] == 300


def test_state_without_run_json_or_damaged_run_json_is_refused(tmp_path: Path) -> None:
    (tmp_path / "work").mkdir()
    with pytest.raises(RunConfigMismatchError, match="work but no run.json"):
        check_or_write_run_json(tmp_path, PARAMS, state_names=STATE)
    (tmp_path / RUN_JSON).write_text("{trunc")
    with pytest.raises(RunConfigMismatchError, match="damaged"):
        check_or_write_run_json(tmp_path, PARAMS, state_names=STATE)


def test_stdin_input_cannot_resume(tmp_path: Path) -> None:
    assert hash_input("-") is None
    params = {**PARAMS, "input_sha256": None}
    assert check_or_write_run_json(tmp_path, params, state_names=STATE) == "new"
    with pytest.raises(RunConfigMismatchError, match="stdin"):
        check_or_write_run_json(tmp_path, params, state_names=STATE)
    assert check_or_write_run_json(tmp_path, params, force=True, state_names=STATE) == "forced"


def test_hash_input_streams_file_bytes(tmp_path: Path) -> None:
    import hashlib

    data = os.urandom(3 << 20)
    (tmp_path / "in.fa").write_bytes(data)
    assert hash_input(tmp_path / "in.fa") == hashlib.sha256(data).hexdigest()


def test_lock_refuses_a_second_holder(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\n"
         "from virnucpro.pipeline.checkpoint import output_dir_lock\n"
         "with output_dir_lock(sys.argv[1]):\n"
         "    print('held', flush=True)\n"
         "    time.sleep(60)\n",
         str(tmp_path)],
        stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        with pytest.raises(VirnucproError, match="another virnucpro run is using") as info:
            with output_dir_lock(tmp_path):
                pass
        assert time.monotonic() - started < 2 and str(tmp_path) in str(info.value)
    finally:
        holder.kill()
        holder.wait()
    with output_dir_lock(tmp_path) as lock_path:  # the kernel dropped the dead holder's lock
        assert lock_path.name == LOCK_NAME
