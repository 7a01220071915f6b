"""sha256 of files, with the two caches that spare re-reading large ones.

* :func:`file_sha256` remembers digests in this process, keyed by (path,
  inode, size, mtime_ns): a rewritten file changes at least one of them. Used
  for result files and inputs (``.done`` markers, ``run.json``).
* :func:`cached_sha256` also remembers them across runs in
  ``$VIRNUCPRO_CACHE/fingerprints.json``, keyed by (path, size, mtime_ns).
  Used for model files: hashing the 5.7 GB ESM-2 3B file takes tens of seconds.
  Concurrent jobs share the store: a new entry is added under a lock
  (``fingerprints.json.lock``) to the store as it is then, so no job's entries are lost.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

from virnucpro.models.locations import cache_dir

logger = logging.getLogger(__name__)

FINGERPRINTS_FILE = "fingerprints.json"
_BLOCK = 1 << 20
_LOCK_TIMEOUT_S = 30.0
_IN_PROCESS: dict[tuple[str, int, int, int], str] = {}


def file_sha256(path: str | Path, use_cache: bool = True) -> str:
    """Hex sha256 of a file, streamed in 1 MiB blocks.

    With ``use_cache`` the result is remembered in this process, keyed by
    (path, inode, size, mtime_ns); a rewritten file changes at least one of them.
    """
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_ino, st.st_size, st.st_mtime_ns)
    if use_cache and key in _IN_PROCESS:
        return _IN_PROCESS[key]
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_BLOCK), b""):
            digest.update(block)
    value = digest.hexdigest()
    if use_cache:
        _IN_PROCESS[key] = value
    return value


def cached_sha256(path: str | Path, store: Path | None = None) -> str:
    """sha256 of a (model) file, remembered across runs by path, size and mtime.

    Args:
        path: the file.
        store: the JSON file of known digests; ``<cache_dir()>/fingerprints.json`` when None.
            A store that cannot be written only costs a re-hash next time.
    """
    resolved = Path(path).resolve()
    stat = resolved.stat()
    key = f"{resolved}|{stat.st_size}|{stat.st_mtime_ns}"
    store = store if store is not None else cache_dir() / FINGERPRINTS_FILE
    known = _read_store(store)
    if key in known:
        return known[key]
    digest = file_sha256(resolved)  # outside the lock: hashing a model takes seconds
    try:
        _record(store, key, digest)
    except OSError as exc:  # unwritable store, or the lock not had in time (filelock.Timeout is one)
        logger.debug("cannot record the fingerprint of %s: %s", resolved, exc)
    return digest


def _read_store(store: Path) -> dict[str, str]:
    try:
        known = json.loads(store.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return known if isinstance(known, dict) else {}


def _record(store: Path, key: str, digest: str) -> None:
    """Add one entry to the store under its lock, re-reading it first (another job may have added some)."""
    from filelock import FileLock

    store.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(store) + ".lock", timeout=_LOCK_TIMEOUT_S):
        known = _read_store(store)
        if known.get(key) == digest:
            return
        known[key] = digest
        _replace_text(store, json.dumps(known, indent=1, sort_keys=True) + "\n")


def _replace_text(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path`` and rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
