"""The one weights-only checkpoint loader; each caller passes its own allow-list.

``torch.load(weights_only=True)`` under ``torch.serialization.safe_globals``:
torch's restricted unpickler builds tensors and the few extra types a caller
allows, and refuses every other global. There is no fallback to unrestricted
unpickling. A refusal becomes :class:`UnsafeCheckpointError` naming the global;
any other failure becomes one-line :class:`ModelNotAvailableError`.

Callers whose files name globals torch itself would allow (``torch.Size``...)
can first run :func:`check_globals`, a static scan of the pickle opcodes
(``pickletools.genops`` only parses) against an exact list of names.
"""

from __future__ import annotations

import pickletools
import re
import threading
import zipfile
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import IO, Any

from virnucpro.errors import ModelNotAvailableError, UnsafeCheckpointError

_GLOBAL_RE = re.compile(r"GLOBAL\s+([\w.]+)")
# Opcodes that push a string that STACK_GLOBAL (protocol 4+) may consume.
_STRING_OPS = frozenset({"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "STRING", "BINSTRING", "SHORT_BINSTRING"})
_MEMO_PUT_OPS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
_MEMO_GET_OPS = frozenset({"GET", "BINGET", "LONG_BINGET"})
# torch.serialization.safe_globals edits one process-wide list and restores it on exit: two threads
# loading at once (a many-sample run's samples, the in-process worker) would drop each other's types.
_SAFE_GLOBALS_LOCK = threading.Lock()


def load_weights_only(path: Path, allowed: Sequence[Any], *, what: str, allowed_text: str, mmap: bool = False) -> Any:
    """Read a torch checkpoint with torch's restricted unpickler.

    Args:
        path: the file (must exist; callers word their own "not found").
        allowed: extra globals for ``torch.serialization.safe_globals`` (types, or
            ``(type, "module.Name")`` pairs mapping a pickled name to a type).
        what: what the file is, for messages ("ESM-2 checkpoint", "classifier checkpoint").
        allowed_text: what is allowed, for the refusal message ("tensors and argparse.Namespace").
        mmap: memory-map zip-format files (large checkpoints); legacy files are read normally.

    Raises:
        UnsafeCheckpointError: the pickle asks for a global outside the allow-list.
        ModelNotAvailableError: unreadable, truncated or corrupt file.
    """
    import torch

    path = Path(path)
    try:
        with _SAFE_GLOBALS_LOCK, torch.serialization.safe_globals(list(allowed)):
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap and zipfile.is_zipfile(path))
    except Exception as exc:  # noqa: BLE001 - every failure becomes one line for the user
        message = str(exc)
        refused = _GLOBAL_RE.search(message) if "GLOBAL" in message else None
        if refused:
            raise refusal(path, refused.group(1), allowed_text) from exc
        raise ModelNotAvailableError(f"unreadable {what} {path} (truncated or corrupt?): {first_line(message)}") from exc


def refusal(path: Path, name: str, allowed_text: str) -> UnsafeCheckpointError:
    """The one-line error for a checkpoint that names the global ``name``."""
    return UnsafeCheckpointError(
        f"refusing to load {path}: it asks for '{name}', which is not an allowed type (only {allowed_text} are)"
    )


def first_line(text: str) -> str:
    """The first non-empty line of an exception message."""
    return next((line.strip() for line in text.splitlines() if line.strip()), "no details")


def check_globals(path: Path, allowed_names: Collection[str], allowed_text: str) -> None:
    """Refuse a checkpoint whose pickle names any global outside ``allowed_names``, without unpickling.

    ``__builtin__.x`` (protocol 2) is read as ``builtins.x``.

    Raises:
        UnsafeCheckpointError: the first global outside the list.
        ModelNotAvailableError: the pickle cannot be parsed.
    """
    for name in pickle_globals(path):
        canonical = name.replace("__builtin__.", "builtins.")
        if name not in allowed_names and canonical not in allowed_names:
            raise refusal(path, name, allowed_text)


def pickle_globals(path: str | Path) -> list[str]:
    """List the globals (``module.name``) a torch checkpoint's pickle names, without unpickling.

    Handles torch's zip format (``*/data.pkl``) and the legacy format (the
    pickles at the start of the file). A ``STACK_GLOBAL`` whose operands cannot
    be traced statically is reported as ``<unresolved STACK_GLOBAL>``, which no
    allow-list contains.
    """
    path = Path(path)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n == "data.pkl" or n.endswith("/data.pkl")]
            if not names:
                raise ModelNotAvailableError(f"{path}: not a torch checkpoint (zip without data.pkl)")
            with archive.open(names[0]) as stream:
                return _scan_pickle(stream, path)
    found: list[str] = []
    with path.open("rb") as stream:
        # Legacy torch.save: magic number, protocol, sys info, then the object.
        for _ in range(4):
            if not stream.read(1):
                break
            stream.seek(-1, 1)
            found.extend(_scan_pickle(stream, path))
    return found


def _scan_pickle(stream: IO[bytes], path: Path) -> list[str]:
    found: list[str] = []
    strings: list[Any] = []  # values pushed recently, for STACK_GLOBAL
    memo: dict[Any, Any] = {}
    next_memo = 0
    try:
        for opcode, arg, _pos in pickletools.genops(stream):
            name = opcode.name
            if name in ("GLOBAL", "INST"):
                module, _, attr = str(arg).partition(" ")
                found.append(f"{module}.{attr}")
            elif name == "STACK_GLOBAL":
                if len(strings) >= 2 and isinstance(strings[-1], str) and isinstance(strings[-2], str):
                    found.append(f"{strings[-2]}.{strings[-1]}")
                else:
                    found.append("<unresolved STACK_GLOBAL>")
                strings.clear()
            elif name in _STRING_OPS:
                strings.append(arg)
            elif name in _MEMO_PUT_OPS:
                memo[arg] = strings[-1] if strings else None
                next_memo = max(next_memo, int(arg) + 1)  # type: ignore[arg-type]  # memo ops carry an int
            elif name == "MEMOIZE":
                memo[next_memo] = strings[-1] if strings else None
                next_memo += 1
            elif name in _MEMO_GET_OPS:
                strings.append(memo.get(arg))
            else:
                strings.append(None)
            del strings[:-2]
    except Exception as exc:  # noqa: BLE001 - a malformed pickle is refused, not crashed on
        raise ModelNotAvailableError(f"{path}: not a readable checkpoint (damaged or truncated pickle: {exc})") from exc
    return found
