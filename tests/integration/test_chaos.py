"""``scripts/chaos.py --rounds 5``: random faults, every run recovers identical (the short campaign)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO_ROOT

SCRIPT = REPO_ROOT / "scripts" / "chaos.py"


def load_chaos():
    spec = importlib.util.spec_from_file_location("chaos", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["chaos"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_five_random_faults_all_recover_identically(tmp_path):
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("VIRNUCPRO_CACHE", str(REPO_ROOT / ".pytest_cache" / "virnucpro-cache"))
    details = tmp_path / "rounds.json"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--rounds", "5", "--seed", "22", "--mbp", "0.05", "--shard-size", "25",
         "--work-dir", str(tmp_path / "campaign"), "--json", str(details)],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[1].split()[:9] == ["fault", "rounds", "landed", "recovered", "identical", "exit", "ok", "redone",
                                    "shards"]
    assert lines[-1].split() == ["all", "5", lines[-1].split()[2], "5", "5", "5", "0", "0", "5"]
    rounds = json.loads(details.read_text())
    assert len({r["kind"] for r in rounds}) == 5 and all(r["passed"] for r in rounds)
    assert not (tmp_path / "campaign").exists()  # removed unless --keep


def test_the_input_has_kept_frames_and_repeats(tmp_path):
    chaos = load_chaos()
    ids = chaos.write_input(tmp_path / "a.fa", 0.05, 3)
    assert ids == chaos.write_input(tmp_path / "b.fa", 0.05, 3) and len(ids) == len(set(ids))
    assert (tmp_path / "a.fa").read_bytes() == (tmp_path / "b.fa").read_bytes()
    sequences = "".join(line if not line.startswith(">") else "\n" for line in
                        (tmp_path / "a.fa").read_text().splitlines()).split("\n")[1:]
    assert all(len(s) % 3 == 0 and not any(s[i:i + 3] in ("TAA", "TAG", "TGA") for i in range(0, len(s), 3))
               for s in sequences)


def test_a_process_found_by_its_tag_is_killed_and_counted(tmp_path):
    chaos = load_chaos()
    tag = "test-" + os.urandom(4).hex()
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                            env=dict(os.environ, **{chaos.TAG_ENV: tag}))
    try:
        # Popen returns once exec closed the error pipe, which the kernel does before it sets the
        # new image's environment: /proc/PID/environ can read empty for a moment (seen once in CI).
        deadline = time.monotonic() + 5
        while not chaos.tagged_processes(tag) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert chaos.tagged_processes(tag) == [proc.pid]
        assert chaos.reap_leftovers(tag, grace=0.5) == 1
        assert proc.wait(timeout=10) < 0
    finally:
        proc.kill()
        proc.wait()
    assert chaos.tagged_processes(tag) == []


def test_redone_results_sees_a_rewritten_marker_and_a_logged_write(tmp_path):
    chaos = load_chaos()
    out = tmp_path / "out"
    (out / "work").mkdir(parents=True)
    files = {}
    for name in ("a.tsv", "b.tsv", "c.tsv"):
        path = out / "work" / name
        path.write_text(name)
        (out / "work" / f"{name}.done").write_text(json.dumps({"size": len(name), "sha256": chaos.sha256_of(path)}))
        files[name] = path
    (out / "work" / "d.tsv.done").write_text(json.dumps({"size": 1, "sha256": "0"}))  # its file is missing
    before = chaos.verified_results(out)
    assert set(before) == set(files.values())
    assert chaos.lying_markers(out) == ["work/d.tsv"]
    log = out / "virnucpro.log"
    log.write_text(f"old: wrote {files['c.tsv']} (3 frames)\n")
    start = log.stat().st_size
    marker = out / "work" / "a.tsv.done"
    replacement = out / "work" / ".new"
    replacement.write_text(marker.read_text())
    os.replace(replacement, marker)  # as an atomic write does: a new inode
    with log.open("a") as handle:
        handle.write(f"[cpu-0] wrote {files['b.tsv']} (3 frames)\n")
    files["b.tsv"].with_name("b.tsv.done").unlink()  # written again, then removed
    files["b.tsv"].unlink()
    assert chaos.redone_results(out, before, log, start) == ["work/a.tsv", "work/b.tsv"]
