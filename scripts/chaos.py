#!/usr/bin/env python3
"""Reliability campaign: interrupt ``virnucpro predict`` at random moments, re-run it, check it recovered.

Usage::

    python scripts/chaos.py                       # 30 rounds, seed 22, 1 Mbp input
    python scripts/chaos.py --rounds 5 --mbp 0.1 --shard-size 40   # the short version in the test suite

A reference run (uninterrupted) on a generated input is timed first. Each round then starts
the same command in a fresh output directory, injects one fault at a moment drawn from the
seed within the reference run's length, and re-runs the same command until it finishes.
Faults (``--kinds``; rounds cycle through a seeded shuffle of them):

* ``kill-parent``: SIGKILL of the main process (its workers must go by themselves);
* ``kill-child``: SIGKILL of one of its worker or score-pool processes (the run goes on);
* ``sigterm``: SIGTERM to the main process (exit 143); ``sigint``: SIGINT to its whole
  process group, as Ctrl-C does (exit 130);
* ``disk-full``: the output directory is on a small tmpfs, filled up at the drawn moment
  (exit 1); where no tmpfs can be mounted, a random ``RLIMIT_FSIZE`` instead;
* ``truncate``, ``flip``: SIGTERM, then one feature or score file that has a ``.done``
  marker is truncated or has a byte flipped before the re-run.

Checks after every round (any failure makes the exit status 1):

* the result tables, the score files and the kept feature files equal the reference run's
  byte for byte, and every input sequence is in ``contig_summary.tsv`` exactly once;
* the interrupted run's exit code is the documented one (0 when it was a child process the
  run recovers from itself, or when the fault came after the run's work was done and
  nothing is missing), every re-run's is 0;
* after each run no process of it is left (processes are found by an environment tag this
  script sets; survivors are killed and counted) and no temporary file is left in DIR;
* every ``.done`` marker present after the interrupted run verifies (nothing finished was
  destroyed), and no result whose marker verified before a re-run was computed again by it:
  its marker and file keep their inode and mtime, and the re-run's log names no write of it.

The campaign only uses the CLI and the output directory's layout (``work/features``,
``work/scores``, ``*.done`` markers with ``size`` and ``sha256``, the result tables).
Prints one table and exits 0 when every round passed.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
logger = logging.getLogger("chaos")

TAG_ENV = "VIRNUCPRO_CHAOS_TAG"
KINDS = ("kill-parent", "kill-child", "sigterm", "sigint", "disk-full", "truncate", "flip")
#: Result tables compared byte for byte (those the reference run wrote).
RESULT_TABLES = ("prediction_results.txt", "prediction_results_highestscore.csv", "contig_summary.tsv",
                 "chunk_scores.tsv", "viral_contigs.fa")
EXPECTED_EXIT = {"kill-parent": -signal.SIGKILL, "kill-child": 0, "sigterm": 143, "sigint": 130,
                 "disk-full": 1, "truncate": 143, "flip": 143}
TEMP_RE = re.compile(r"^\..+\.tmp-\d+-[0-9a-f]{8}$")
WROTE_RE = re.compile(r"\bwrote (/\S+)")
GRACE_S = 15.0  # how long processes of a finished run may take to go
RERUNS = 3


# --------------------------------------------------------------------------- input


def write_input(path: Path, mbp: float, seed: int) -> list[str]:
    """A FASTA file of about ``mbp`` Mbp whose forward frames have no stop codon (so every chunk
    has kept frames), with some repeated sequences (cross-shard reuse); returns the record IDs."""
    rng = random.Random(seed)
    codons = [a + b + c for a in "ACGT" for b in "ACGT" for c in "ACGT" if a + b + c not in ("TAA", "TAG", "TGA")]
    target, total = int(mbp * 1e6), 0
    ids: list[str] = []
    earlier: list[str] = []
    with path.open("w") as handle:
        while total < target:
            if earlier and rng.random() < 0.05:
                sequence = rng.choice(earlier)
            else:
                sequence = "".join(rng.choices(codons, k=rng.randint(100, 2500)))
                earlier.append(sequence)
            ids.append(f"contig{len(ids) + 1}")
            handle.write(f">{ids[-1]} chaos seed {seed}\n")
            for start in range(0, len(sequence), 60):
                handle.write(sequence[start:start + 60] + "\n")
            total += len(sequence)
    return ids


# --------------------------------------------------------------------------- processes


def tagged_processes(tag: str) -> list[int]:
    """PIDs of live processes whose environment carries ``TAG_ENV=tag`` (every process of the runs)."""
    needle = f"{TAG_ENV}={tag}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            found.append(int(entry))
    return found


def children_of(pid: int) -> list[int]:
    """Direct children of ``pid`` that are multiprocessing children (workers, score-pool processes),
    not the resource tracker."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid and "multiprocessing" in cmdline and "resource_tracker" not in cmdline:
            found.append(int(entry))
    return sorted(found)


def reap_leftovers(tag: str, grace: float = GRACE_S) -> int:
    """Wait up to ``grace`` seconds for the tagged processes to go; SIGKILL and count the rest."""
    deadline = time.monotonic() + grace
    left = tagged_processes(tag)
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = tagged_processes(tag)
    for pid in left:
        with contextlib.suppress(OSError):
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            logger.error("process %d left behind: %s", pid, cmdline[:160])
            os.kill(pid, signal.SIGKILL)
    return len(left)


# --------------------------------------------------------------------------- output directory


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Stamp:
    """What changes when a file is written again (atomic writes replace the inode)."""

    marker: tuple[int, int]
    result: tuple[int, int]


def stamp_of(path: Path) -> tuple[int, int]:
    info = path.stat()
    return info.st_ino, info.st_mtime_ns


def verified_results(out: Path) -> dict[Path, Stamp]:
    """Every result under ``out`` whose ``.done`` marker verifies (size and sha256), with stamps."""
    found = {}
    for marker in sorted(out.rglob("*.done")):
        result = marker.with_name(marker.name[: -len(".done")])
        try:
            data = json.loads(marker.read_text())
            if result.stat().st_size == data["size"] and sha256_of(result) == data["sha256"]:
                found[result] = Stamp(stamp_of(marker), stamp_of(result))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return found


def lying_markers(out: Path) -> list[str]:
    """Markers whose result is missing or differs from what they record."""
    all_markers = {m.with_name(m.name[: -len(".done")]) for m in out.rglob("*.done")}
    return sorted(str(p.relative_to(out)) for p in all_markers - set(verified_results(out)))


def temporaries(out: Path) -> list[str]:
    return sorted(str(p.relative_to(out)) for p in out.rglob("*") if TEMP_RE.match(p.name) or ".tmp-" in p.name)


def compared_files(out: Path, tables: tuple[str, ...]) -> dict[str, str]:
    """sha256 of each compared file: the result tables, the score files and the kept features."""
    names = [out / name for name in tables]
    names += sorted((out / "work" / "scores").glob("*.tsv")) + sorted((out / "work" / "features").glob("*.safetensors"))
    return {str(p.relative_to(out)): sha256_of(p) for p in names if p.is_file()}


def summary_ids(out: Path) -> list[str]:
    lines = (out / "contig_summary.tsv").read_text().splitlines()
    return [line.split("\t", 1)[0] for line in lines[1:] if line]


# --------------------------------------------------------------------------- disk


class Disk:
    """Where a disk-full round's output lives: a small tmpfs (root with mount rights), else nothing
    (the round falls back to RLIMIT_FSIZE)."""

    def __init__(self, mount_point: Path, size_bytes: int) -> None:
        self.mount_point = mount_point
        self.size_bytes = size_bytes
        self.mounted = False

    def __enter__(self) -> Disk:
        self.mount_point.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0 and shutil.which("mount"):
            done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={self.size_bytes}", "tmpfs",
                                   str(self.mount_point)], capture_output=True)
            self.mounted = done.returncode == 0
        return self

    def fill(self) -> None:
        """Write a ballast file until the filesystem is full."""
        block = b"\0" * (1 << 20)
        with contextlib.suppress(OSError), (self.mount_point / "ballast").open("wb") as handle:
            while True:
                handle.write(block)
                handle.flush()
        with contextlib.suppress(OSError), (self.mount_point / "ballast2").open("wb") as handle:
            while True:  # the last partial MiB
                handle.write(b"\0" * 4096)
                handle.flush()

    def free(self) -> None:
        for name in ("ballast", "ballast2"):
            with contextlib.suppress(FileNotFoundError):
                (self.mount_point / name).unlink()

    def __exit__(self, *exc: object) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.mount_point)], check=False, capture_output=True)


def file_size_limit(limit: int) -> Callable[[], None]:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of death

    return apply


# --------------------------------------------------------------------------- running


@dataclass
class Campaign:
    """Fixed settings of every run of the campaign."""

    input_path: Path
    workers: int
    score_workers: int
    shard_size: int
    env: dict[str, str]
    tag: str
    timeout: float = 600.0

    def args(self, out: Path) -> list[str]:
        return [sys.executable, "-m", "virnucpro", "predict", str(self.input_path), "-o", str(out),
                "--models", "demo", "--device", "cpu", "--workers", str(self.workers),
                "--score-workers", str(self.score_workers), "--shard-size", str(self.shard_size),
                "--keep-features", "--no-dashboard"]

    def start(self, out: Path, stderr: Path, preexec: Callable[[], None] | None = None) -> subprocess.Popen[bytes]:
        with stderr.open("ab") as err:
            return subprocess.Popen(self.args(out), stdout=subprocess.DEVNULL, stderr=err, env=self.env,
                                    start_new_session=True, preexec_fn=preexec)

    def wait(self, proc: subprocess.Popen[bytes], timeout: float | None = None) -> int | None:
        """The exit code, or None when the run hung (it is then killed with its group)."""
        try:
            return proc.wait(timeout=timeout or self.timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return None


@dataclass
class Round:
    """What one round saw."""

    number: int
    kind: str
    delay: float = 0.0
    landed: bool = False  # the fault hit a running run (not one that had already finished)
    detail: str = ""
    exit_code: int | None = None
    rerun_codes: list[int | None] = field(default_factory=list)
    recovered: bool = False
    identical: bool = False
    exit_ok: bool = False
    redone: list[str] = field(default_factory=list)
    leftover_processes: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return (self.recovered and self.identical and self.exit_ok and not self.redone
                and not self.leftover_processes and not self.problems)


def wait_for(proc: subprocess.Popen[bytes], seconds: float) -> bool:
    """Sleep up to ``seconds``; False when the run ended before."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        time.sleep(min(0.02, max(0.0, deadline - time.monotonic())))
    return proc.poll() is None


def inject(kind: str, proc: subprocess.Popen[bytes], rng: random.Random, disk: Disk | None) -> str:
    """Apply the fault to the running ``proc``; returns what was done ('' when it had ended)."""
    if proc.poll() is not None:
        return ""
    if kind == "kill-parent":
        os.kill(proc.pid, signal.SIGKILL)
        return f"SIGKILL {proc.pid}"
    if kind == "kill-child":
        while proc.poll() is None:  # at the next moment a child exists
            children = children_of(proc.pid)
            if children:
                victim = rng.choice(children)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(victim, signal.SIGKILL)
                    return f"SIGKILL child {victim} of {children}"
            time.sleep(0.05)
        return ""
    if kind == "sigint":
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGINT)
        return "SIGINT to the process group"
    if kind == "disk-full" and disk is not None and disk.mounted:
        disk.fill()
        return "filled the tmpfs"
    # sigterm, truncate, flip
    os.kill(proc.pid, signal.SIGTERM)
    return "SIGTERM"


def corrupt(kind: str, out: Path, rng: random.Random) -> str | None:
    """Truncate, or flip one byte of, a feature or score file that has a ``.done`` marker;
    returns what was done (None: no such file yet)."""
    work = out / "work"
    candidates = sorted(p for p in [*work.glob("features/*.safetensors"), *work.glob("scores/*.tsv")]
                        if p.with_name(p.name + ".done").exists() and p.stat().st_size > 0)
    if not candidates:
        return None
    victim = rng.choice(candidates)
    data = bytearray(victim.read_bytes())
    if kind == "truncate":
        data = data[: rng.randrange(len(data))]
        what = f"truncated {victim.relative_to(out)} to {len(data)} bytes"
    else:
        position = rng.randrange(len(data))
        data[position] ^= 0xFF
        what = f"flipped byte {position} of {victim.relative_to(out)}"
    victim.write_bytes(bytes(data))
    return what


def run_round(number: int, kind: str, campaign: Campaign, root: Path, rng: random.Random,
              reference_s: float, reference: dict[str, str], tables: tuple[str, ...], input_ids: list[str],
              max_file_size: int) -> Round:
    """One fault, then re-runs until the run finishes, then every check."""
    result = Round(number, kind)
    directory = root / f"round-{number:03d}"
    directory.mkdir()
    stderr = directory / "stderr.txt"
    disk_size = 4 * sum(reference_sizes(root)) + (8 << 20)
    place: contextlib.AbstractContextManager[Disk | None] = (
        Disk(directory / "disk", disk_size) if kind == "disk-full" else contextlib.nullcontext(None))
    with place as disk:
        out = (disk.mount_point if disk is not None else directory) / "out"
        preexec = None
        if disk is not None and not disk.mounted:
            limit = rng.randint(1_000, max(1_001, max_file_size - 1))
            preexec = file_size_limit(limit)
            result.detail = f"RLIMIT_FSIZE {limit} (no tmpfs); "
        # A corruption needs a finished file to corrupt: its SIGTERM comes later (or after the end).
        result.delay = rng.uniform(*((0.4, 1.2) if kind in ("truncate", "flip") else (0.02, 0.95))) * reference_s
        proc = campaign.start(out, stderr, preexec)
        if wait_for(proc, result.delay):
            done = inject(kind, proc, rng, disk)
            result.landed = bool(done)
            result.detail += done
        elif preexec is not None:
            result.landed = True  # the limit was there from the start
        result.exit_code = campaign.wait(proc)
        if kind == "disk-full" and preexec is not None:
            result.landed = result.exit_code != 0
        result.leftover_processes += reap_leftovers(campaign.tag)
        expected = EXPECTED_EXIT[kind] if result.landed else 0
        if kind == "kill-child":
            expected = 0
        result.exit_ok = result.exit_code == expected
        if result.exit_code == 0 and out.exists():
            # the fault came as the run was exiting, its work done (a stop signal is then ignored,
            # a full disk never needed): fine when nothing is missing
            result.exit_ok = compared_files(out, tables) == reference
        if not result.exit_ok:
            result.problems.append(f"exit code {result.exit_code}, expected {expected}")
        if disk is not None:
            disk.free()
        if out.exists():
            lies = lying_markers(out)
            if lies:
                result.problems.append(f"markers that do not verify after the fault: {lies[:3]}")
        if kind in ("truncate", "flip"):
            what = corrupt(kind, out, rng)
            result.landed = what is not None
            result.detail = "; ".join(part for part in (result.detail, what or "no file to corrupt yet") if part)

        for _ in range(RERUNS):
            before = verified_results(out) if out.exists() else {}
            log = out / "virnucpro.log"
            log_start = log.stat().st_size if log.exists() else 0
            proc = campaign.start(out, stderr)
            code = campaign.wait(proc)
            result.rerun_codes.append(code)
            result.leftover_processes += reap_leftovers(campaign.tag)
            result.redone += redone_results(out, before, log, log_start)
            if code == 0:
                result.recovered = True
                break
        if not result.recovered:
            result.problems.append(f"re-runs exited {result.rerun_codes}")
        else:
            got = compared_files(out, tables)
            result.identical = got == reference
            if not result.identical:
                differ = sorted(k for k in set(got) | set(reference) if got.get(k) != reference.get(k))
                result.problems.append(f"differs from the reference: {differ[:5]}")
            ids = summary_ids(out)
            if ids != input_ids:
                result.problems.append(f"contig_summary.tsv has {len(ids)} rows ({len(set(ids))} distinct) "
                                       f"for {len(input_ids)} input sequences")
        left = temporaries(out) if out.exists() else []
        left += [f"$TMPDIR/{p.name}" for p in (root / "tmp").iterdir()]
        if left:
            result.problems.append(f"temporary files left: {left[:3]}")
        if disk is not None and disk.mounted and not result.passed and out.exists():
            shutil.copytree(out, directory / "out", symlinks=True)  # the tmpfs goes with the round
    if result.passed:
        shutil.rmtree(directory, ignore_errors=True)
    return result


def reference_sizes(root: Path) -> list[int]:
    out = root / "reference" / "out"
    return [p.stat().st_size for p in out.rglob("*") if p.is_file()]


def redone_results(out: Path, before: dict[Path, Stamp], log: Path, log_start: int) -> list[str]:
    """Results that verified before the re-run and that it wrote again: a changed inode or mtime
    of the marker or the file, or a ``wrote PATH`` line of the re-run's log (which also catches a
    file written again and then removed by the cleanup of a finished run)."""
    redone = set()
    for path, stamp in before.items():
        marker = path.with_name(path.name + ".done")
        with contextlib.suppress(FileNotFoundError):
            if stamp_of(marker) != stamp.marker or stamp_of(path) != stamp.result:
                redone.add(path)
    with contextlib.suppress(OSError), log.open("rb") as handle:
        handle.seek(log_start)
        written = {Path(m) for m in WROTE_RE.findall(handle.read().decode(errors="replace"))}
        redone |= written & set(before)
    return sorted(str(p.relative_to(out)) for p in redone)


# --------------------------------------------------------------------------- report


def table(rounds: list[Round], kinds: list[str]) -> str:
    header = ("fault", "rounds", "landed", "recovered", "identical", "exit ok", "redone shards", "leftover procs",
              "passed")
    rows = [header]
    for kind in [*kinds, "all"]:
        mine = [r for r in rounds if kind in (r.kind, "all")]
        if not mine:
            continue
        rows.append((kind, str(len(mine)), str(sum(r.landed for r in mine)), str(sum(r.recovered for r in mine)),
                     str(sum(r.identical for r in mine)), str(sum(r.exit_ok for r in mine)),
                     str(sum(len(r.redone) for r in mine)), str(sum(r.leftover_processes for r in mine)),
                     str(sum(r.passed for r in mine))))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
             for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    lines.insert(len(lines) - 1, "-" * len(lines[0]))
    return "\n".join(lines)


@contextlib.contextmanager
def campaign_root(work_dir: str | None, keep: bool, failed: list[Round]) -> Iterator[Path]:
    """The campaign directory; removed at the end unless ``keep`` or a round in ``failed``
    (filled by the caller) needs inspecting."""
    root = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="virnucpro-chaos-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        yield root
    finally:
        if keep or failed:
            logger.info("campaign directory kept: %s", root)
        else:
            shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=30, help="faults to inject, one per round (default 30)")
    parser.add_argument("--seed", type=int, default=22, help="seed of the input, the fault order and the moments")
    parser.add_argument("--mbp", type=float, default=1.0, help="input size in Mbp (default 1)")
    parser.add_argument("--shard-size", type=int, default=250, help="frames per shard (default 250)")
    parser.add_argument("--workers", type=int, default=2, help="CPU worker processes (default 2)")
    parser.add_argument("--score-workers", type=int, default=2, help="score-pool processes (default 2)")
    parser.add_argument("--kinds", default=",".join(KINDS), help=f"faults to draw from (default {','.join(KINDS)})")
    parser.add_argument("--work-dir", help="campaign directory (default: a new temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the campaign directory (failed rounds always "
                        "keep theirs while the directory is kept)")
    parser.add_argument("--json", help="also write every round's details to this JSON file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s chaos: %(message)s", datefmt="%H:%M:%S")
    kinds = [k for k in args.kinds.split(",") if k]
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown or not kinds:
        parser.error(f"unknown fault kind(s): {unknown}; choose from {', '.join(KINDS)}")

    # A stopped campaign still kills what it started and unmounts its tmpfs (the finally blocks).
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    tag = uuid.uuid4().hex
    rounds: list[Round] = []
    failed: list[Round] = []
    with campaign_root(args.work_dir, args.keep, failed) as root:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        env.setdefault("VIRNUCPRO_CACHE", str(root / "cache"))
        env[TAG_ENV] = tag
        env["TMPDIR"] = str(root / "tmp")  # what the runs leave in their temp directory is checked too
        (root / "tmp").mkdir()
        input_path = root / "input.fa"
        input_ids = write_input(input_path, args.mbp, args.seed)
        campaign = Campaign(input_path, args.workers, args.score_workers, args.shard_size, env, tag)
        try:
            out = root / "reference" / "out"
            out.parent.mkdir()
            began = time.monotonic()
            code = campaign.wait(campaign.start(out, out.parent / "stderr.txt"))
            reference_s = time.monotonic() - began
            leftovers = reap_leftovers(tag)
            if code != 0 or leftovers:
                logger.error("the reference run failed (exit %s, %d process(es) left); see %s", code, leftovers,
                             out.parent / "stderr.txt")
                failed.append(Round(0, "reference"))
                return 1
            tables = tuple(name for name in RESULT_TABLES if (out / name).is_file())
            reference = compared_files(out, tables)
            if summary_ids(out) != input_ids:
                logger.error("the reference run's contig_summary.tsv does not list every input sequence once")
                failed.append(Round(0, "reference"))
                return 1
            max_file_size = max(reference_sizes(root))
            logger.info("input: %d sequences, %.2f Mbp; reference run %.1f s, %d compared files; %d round(s)",
                        len(input_ids), args.mbp, reference_s, len(reference), args.rounds)
            order = kinds[:]
            random.Random(args.seed).shuffle(order)
            for number in range(1, args.rounds + 1):
                kind = order[(number - 1) % len(order)]
                rng = random.Random(f"{args.seed}:{number}")
                found = run_round(number, kind, campaign, root, rng, reference_s, reference, tables, input_ids,
                                  max_file_size)
                rounds.append(found)
                if not found.passed:
                    failed.append(found)
                logger.info("round %d %s at %.1f s (%s): exit %s, re-runs %s, %s%s", number, kind, found.delay,
                            found.detail or "finished before the fault", found.exit_code, found.rerun_codes,
                            "ok" if found.passed else "FAILED: ", "; ".join(found.problems + (
                                [f"redone {found.redone}"] if found.redone else []) + (
                                [f"{found.leftover_processes} process(es) left"] if found.leftover_processes else [])))
        finally:
            leftovers = reap_leftovers(tag, grace=0)
            if leftovers:
                logger.error("%d process(es) left at the end were killed", leftovers)
        print(f"seed {args.seed}, {args.mbp} Mbp ({len(input_ids)} sequences), shard size {args.shard_size}, "
              f"{args.workers} workers, {args.score_workers} score workers, reference run {reference_s:.1f} s")
        print(table(rounds, kinds))
        if args.json:
            Path(args.json).write_text(json.dumps([vars(r) | {"passed": r.passed} for r in rounds], indent=1) + "\n")
        if failed:
            print(f"{len(failed)} round(s) failed: {', '.join(str(r.number) for r in failed)}; kept in {root}")
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # SIGINT/SIGTERM: the finally blocks have cleaned up
        print("chaos: stopped", file=sys.stderr)
        sys.exit(130)
