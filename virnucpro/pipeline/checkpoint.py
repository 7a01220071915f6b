"""Crash-safe files: atomic writes, ``.done`` markers, ``run.json`` and the output-directory lock.

The rules that make a killed run safe to resume:

1. Every result is written through :func:`atomic_write` (temp file in the same
   directory, fsync, ``os.replace``, fsync of the directory), so a result path
   either holds a complete file or does not exist. Temp names look like
   ``.<name>.tmp-<pid>-<8 hex>``; :func:`clean_temporaries` removes them.
2. After a result is in place, :func:`write_done` writes ``<file>.done`` (also
   atomically) with the file's size, sha256, frame count and an ``identity``
   (model + precision + anything else the caller says the numbers depend on).
   :func:`verify_done` is the only test of "this result can be reused".
3. ``run.json`` records the input's sha256 and every parameter that changes
   numbers; :func:`check_or_write_run_json` refuses to mix two runs in one
   directory unless ``force`` is given.
4. :func:`output_dir_lock` keeps two runs from sharing one directory.

Cost of verification: :func:`verify_done` reads the whole file to hash it
(sha256 runs at roughly 0.5-2 GB/s per core), so checking 50 GB of ESM-2
features costs tens of seconds. Hashes are cached in memory for the life of the
process, keyed by path, inode, size and mtime, so a run pays it once per file.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from virnucpro.errors import OutputDirBusyError, OutputError, RunConfigMismatchError
from virnucpro.hashing import file_sha256
from virnucpro.pipeline.outputs import LOCK_NAME, RUN_JSON_NAME, RUN_SUMMARY_NAME

logger = logging.getLogger(__name__)

# File names of an output directory are named in outputs.py (the layout's one owner);
# what --force may remove is passed in by the caller (RunPaths.state_names()).
RUN_JSON = RUN_JSON_NAME
DONE_SUFFIX = ".done"
MARKER_VERSION = 1
RUN_JSON_VERSION = 1

_TEMP_RE = re.compile(r"^\..+\.tmp-\d+-[0-9a-f]{8}$")

Writer = Callable[[IO[bytes]], Any]


# --------------------------------------------------------------------------- atomic writes


def make_dir(path: Path) -> None:
    """``mkdir -p`` whose failure (read-only filesystem, permission, a file in the way) is one line.

    Raises:
        OutputError: the directory cannot be created.
    """
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create directory {path}: {exc.strerror or exc}") from None


def temp_name_for(path: Path) -> Path:
    """A fresh temporary name next to ``path`` that :func:`is_temporary` recognises."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")


def is_temporary(path: str | Path) -> bool:
    """True if ``path``'s name was made by :func:`temp_name_for`."""
    return bool(_TEMP_RE.match(Path(path).name))


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable; some filesystems refuse O_RDONLY on dirs, which is harmless.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


_renames_in_process = 0


def _maybe_crash_before_rename() -> None:
    """Fault injection for the kill-and-resume tests.

    ``VIRNUCPRO_CRASH_BEFORE_RENAME=N`` SIGKILLs a process just before its N-th
    atomic rename (temp file complete, not yet renamed); ``worker:N`` does so
    only in worker processes (each new worker counts from zero again).
    """
    global _renames_in_process
    target = os.environ.get("VIRNUCPRO_CRASH_BEFORE_RENAME")
    if not target:
        return
    if target.startswith("worker:"):
        import multiprocessing

        if multiprocessing.parent_process() is None:
            return
        target = target.split(":", 1)[1]
    _renames_in_process += 1
    if _renames_in_process == int(target):
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


def atomic_write(path: str | Path, data: bytes | bytearray | memoryview | Writer) -> Path:
    """Write a file so that ``path`` is either absent, the old file, or the complete new file.

    Args:
        path: final location; its directory must exist.
        data: the bytes to write, or a function called with a binary file object to write into.

    Returns:
        ``path`` as a :class:`Path`.

    Raises:
        OutputError: the file cannot be written (disk full, permission denied...),
            including an ``OSError`` raised inside a writer function; other
            exceptions propagate unchanged. The temp file is removed in every failure case.
    """
    path = Path(path)
    tmp = temp_name_for(path)
    try:
        with open(tmp, "xb") as handle:
            if callable(data):
                data(handle)
            else:
                handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        _maybe_crash_before_rename()
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):  # absent, or on a read-only filesystem (EROFS even when absent)
            tmp.unlink()
        if isinstance(exc, OSError):
            raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from exc
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """:func:`atomic_write` for text."""
    return atomic_write(path, text.encode(encoding))


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """``torch.save(obj)`` through :func:`atomic_write` (torch is imported only here)."""
    import torch

    return atomic_write(path, lambda handle: torch.save(obj, handle))


def clean_temporaries(directory: str | Path, recursive: bool = True) -> list[Path]:
    """Remove temp files left by killed runs; real results are never touched.

    Call this only while holding :func:`output_dir_lock` and before starting
    workers: a temp file of a writer that is still running would be removed too.

    Returns:
        The removed paths.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    candidates = directory.rglob(".*.tmp-*") if recursive else directory.glob(".*.tmp-*")
    removed = []
    for candidate in candidates:
        if is_temporary(candidate) and (candidate.is_file() or candidate.is_symlink()):
            with contextlib.suppress(FileNotFoundError):
                candidate.unlink()
                removed.append(candidate)
    if removed:
        logger.info("removed %d temporary file(s) left by an earlier run in %s", len(removed), directory)
    return removed


# --------------------------------------------------------------------------- .done markers


def done_path(path: str | Path) -> Path:
    """The marker path for a result file: ``<file>.done``."""
    path = Path(path)
    return path.with_name(path.name + DONE_SUFFIX)


def _normalise(value: Any) -> Any:
    """The value as it reads back from JSON (tuples become lists, keys become strings)."""
    return json.loads(json.dumps(value, sort_keys=True))


def write_done(
    path: str | Path,
    identity: Mapping[str, Any],
    frames: int | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Record that ``path`` is a complete result (call after the file is in place).

    Args:
        path: the result file.
        identity: JSON-serialisable description of what produced it (model name
            and hash, precision, chunk length...); :func:`verify_done` requires equality.
        frames: number of records (frames) the file holds.
        extra: anything else worth keeping (informational, not verified).

    Returns:
        The marker path.
    """
    path = Path(path)
    marker = {
        "version": MARKER_VERSION,
        "file": path.name,
        "size": path.stat().st_size,
        "sha256": file_sha256(path),
        "frames": frames,
        "identity": _normalise(dict(identity)),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if extra:
        marker["extra"] = _normalise(dict(extra))
    return atomic_write_text(done_path(path), json.dumps(marker, indent=1, sort_keys=True) + "\n")


def read_done(path: str | Path) -> dict[str, Any] | None:
    """The parsed marker of ``path``, or None if it is missing or unreadable."""
    try:
        marker = json.loads(done_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def verify_done(path: str | Path, expected_identity: Mapping[str, Any], use_cache: bool = True) -> bool:
    """True only if ``path`` is a complete result made with ``expected_identity``.

    Checks, in order of cost: the marker exists and parses, its identity equals
    ``expected_identity``, the file exists with the recorded size, and its
    sha256 matches (a full read of the file, see the module docstring).
    The reason for a False is logged at DEBUG level.
    """
    path = Path(path)
    marker = read_done(path)
    if marker is None:
        why = "no marker" if not done_path(path).exists() else "unreadable marker"
        logger.debug("%s: not reusable (%s)", path, why)
        return False
    if marker.get("version") != MARKER_VERSION:
        logger.debug("%s: not reusable (marker version %r)", path, marker.get("version"))
        return False
    if marker.get("identity") != _normalise(dict(expected_identity)):
        logger.info("%s: made with other settings, will be recomputed", path)
        logger.debug("%s: identity %r != expected %r", path, marker.get("identity"), dict(expected_identity))
        return False
    try:
        size = path.stat().st_size
    except OSError:
        logger.debug("%s: not reusable (result file missing)", path)
        return False
    if size != marker.get("size"):
        logger.info("%s: size %d differs from its marker (%s), will be recomputed", path, size, marker.get("size"))
        return False
    if file_sha256(path, use_cache=use_cache) != marker.get("sha256"):
        logger.info("%s: checksum differs from its marker, will be recomputed", path)
        return False
    return True


def remove_result(path: str | Path) -> None:
    """Delete a result and its marker (marker first, so a crash never leaves a marker alone)."""
    path = Path(path)
    for target in (done_path(path), path):
        with contextlib.suppress(FileNotFoundError):
            target.unlink()


# --------------------------------------------------------------------------- run.json


def hash_input(path: str | Path) -> str | None:
    """sha256 of the input file's bytes (as stored, compressed or not), streamed.

    Returns None for a stream (``-``, a named pipe, ``<(...)``; see
    :func:`virnucpro.io.fasta_open.is_stream`): it cannot be read twice, so a run fed
    from one records no hash and cannot be resumed (see :func:`check_or_write_run_json`).
    """
    from virnucpro.io.fasta_open import is_stream

    if is_stream(path):
        return None
    return file_sha256(path, use_cache=False)


Describer = Callable[[Mapping[str, Any], Mapping[str, Any]], list[str]]


def describe_param_differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """``key: old -> new`` for every top-level key whose value differs (values as JSON)."""
    diffs = []
    for key in sorted(set(old) | set(new)):
        if key not in old:
            diffs.append(f"{key}: (absent) -> {json.dumps(new[key])}")
        elif key not in new:
            diffs.append(f"{key}: {json.dumps(old[key])} -> (absent)")
        elif old[key] != new[key]:
            diffs.append(f"{key}: {json.dumps(old[key])} -> {json.dumps(new[key])}")
    return diffs


def wipe_run_state(out_dir: str | Path, state_names: Sequence[str],
                   derived_files: Sequence[str] = ()) -> list[Path]:
    """Remove the files and directories a run created (``state_names``) plus temporaries.

    Only the listed names directly inside ``out_dir`` (and their ``.done``
    markers) are removed, and the listed ``derived_files`` (relative paths of
    single files, e.g. an export; their directory goes only when left empty);
    anything else in the directory is left alone. ``run.json`` goes first, so
    an interrupted wipe is never mistaken for a resumable run. Logs nothing:
    the caller says what was removed and why.
    """
    out_dir = Path(out_dir)
    names = sorted(state_names, key=lambda name: name != RUN_JSON)
    removed = []
    for name in names:
        if "/" in name or name in ("", ".", ".."):
            raise ValueError(f"state name must be a plain file name: {name!r}")
        for target in (out_dir / name, done_path(out_dir / name)):
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
            else:
                continue
            removed.append(target)
    parents = set()
    for relative in derived_files:
        target = out_dir / relative
        if ".." in Path(relative).parts or target.is_dir():
            continue
        if target.is_file() or target.is_symlink():
            target.unlink()
            removed.append(target)
            parents.add(target.parent)
    for parent in parents:
        with contextlib.suppress(OSError):  # not empty: the user's files stay
            parent.rmdir()
    clean_temporaries(out_dir, recursive=False)
    return removed


def read_run_json(out_dir: str | Path) -> dict[str, Any] | None:
    """The parsed ``run.json`` of ``out_dir``, or None if there is none.

    Raises:
        RunConfigMismatchError: the file exists but cannot be read or parsed.
    """
    path = Path(out_dir) / RUN_JSON
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise RunConfigMismatchError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        data = json.loads(text)
        if not isinstance(data, dict) or not isinstance(data.get("params"), dict):
            raise ValueError("no 'params' object")
    except ValueError as exc:
        raise RunConfigMismatchError(
            f"{path} is damaged ({exc}); use --force to start over or choose another -o"
        ) from exc
    return data


def _finished_ok(out_dir: Path) -> bool:
    """True when the run in ``out_dir`` finished (its ``run_summary.json`` says ``ok``)."""
    try:
        return json.loads((out_dir / RUN_SUMMARY_NAME).read_text(encoding="utf-8")).get("status") == "ok"
    except (OSError, ValueError, AttributeError):
        return False


def check_or_write_run_json(
    out_dir: str | Path,
    params: Mapping[str, Any],
    force: bool = False,
    *,
    state_names: Sequence[str],
    derived_files: Sequence[str] = (),
    describe: Describer = describe_param_differences,
) -> str:
    """Start a run in ``out_dir`` or resume the one that is there.

    ``params`` must hold every value that changes the numbers (chunk length,
    model identities, precision, ...) and, by convention, ``input_sha256``
    from :func:`hash_input`. An ``input_sha256`` of None (stdin) means the
    input cannot be compared: such a run never resumes; re-using its directory
    needs ``force``.

    Args:
        out_dir: the output directory (created if missing).
        params: JSON-serialisable parameters of this run.
        force: wipe the previous run state (:func:`wipe_run_state`) and start over; logs one
            ``--force: removed ...`` line when something was removed.
        state_names: what ``force`` may remove (``RunPaths.state_names()``); see :func:`wipe_run_state`.
        derived_files: single files ``force`` also removes (``RunPaths.derived_names()``).
        describe: turns old and new params into one short ``setting: old -> new`` text per difference.

    Returns:
        ``"new"`` (first run here), ``"resume"`` (same parameters) or ``"forced"``.

    Raises:
        RunConfigMismatchError: the directory holds another run; the message names what differs.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    new_params = _normalise(dict(params))
    outcome = "new"
    if force:
        removed = wipe_run_state(out_dir, state_names, derived_files)
        if removed:
            outcome = "forced"
            logger.info("--force: removed the previous run's files in %s (%s)", out_dir,
                        ", ".join(str(p.relative_to(out_dir)) for p in removed))
    else:
        previous = read_run_json(out_dir)
        hint = "use --force to start over or choose another -o"
        if previous is None:
            leftovers = [n for n in state_names if n != RUN_JSON and (out_dir / n).exists()]
            if leftovers:
                raise RunConfigMismatchError(
                    f"{out_dir} holds {', '.join(leftovers)} but no {RUN_JSON}, so it cannot be resumed; {hint}"
                )
        else:
            old_params = previous["params"]
            if new_params.get("input_sha256", "") is None or old_params.get("input_sha256", "") is None:
                raise RunConfigMismatchError(
                    f"{out_dir} holds an earlier run and the input is a stream (stdin or a pipe), which cannot be checked "
                    f"against it; {hint}"
                )
            diffs = describe(old_params, new_params)
            if diffs:
                raise RunConfigMismatchError(
                    f"{out_dir} holds a run made with other settings ({'; '.join(diffs)}); "
                    f"re-run with the earlier settings, {hint}"
                )
            if _finished_ok(Path(out_dir)):
                logger.info("the run in %s is finished: reusing its verified results and re-writing the tables",
                            out_dir)
            else:
                logger.info("resuming the run in %s", out_dir)
            return "resume"
    from virnucpro import __version__

    manifest = {
        "version": RUN_JSON_VERSION,
        "virnucpro_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "params": new_params,
    }
    atomic_write_text(out_dir / RUN_JSON, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return outcome


# --------------------------------------------------------------------------- lock


@contextlib.contextmanager
def output_dir_lock(out_dir: str | Path) -> Iterator[Path]:
    """Hold ``DIR/.virnucpro.lock`` for the duration; a second holder fails at once.

    Uses ``flock`` through :mod:`filelock`; the lock is released by the kernel
    when the process dies, so a killed run never leaves a stale lock. (``flock``
    is unreliable on a few NFS set-ups; see the report in DECISIONS.)

    Raises:
        VirnucproError: another process holds the lock.
    """
    import filelock

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    lock_path = out_dir / LOCK_NAME
    lock = filelock.FileLock(str(lock_path), timeout=0)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise OutputDirBusyError(
            f"another virnucpro run is using {out_dir} (lock {lock_path} is held); "
            "wait for it to finish or choose another -o"
        ) from None
    try:
        yield lock_path
    finally:
        lock.release()
