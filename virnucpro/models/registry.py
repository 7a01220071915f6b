"""Model identities, caches, downloads and the offline policy: the one place that knows them.

Where each model lives:

- ESM-2 (fair-esm): ``torch.hub.get_dir()/checkpoints/<name>.pt`` plus
  ``<name>-contact-regression.pt`` (``$TORCH_HOME`` respected), fetched from
  fair-esm's public URLs (:data:`ESM_MODEL_URL`, :data:`ESM_REGRESSION_URL`).
- DNABERT-S: the Hugging Face cache (``$HF_HUB_CACHE``, else ``$HF_HOME/hub``),
  through ``huggingface_hub.snapshot_download``; only the config, tokenizer and
  weight files are fetched, never modelling code (no ``trust_remote_code``).
- Classifiers: ``$VIRNUCPRO_CACHE/classifiers/{300,500}_model.pth`` (cache root:
  ``$VIRNUCPRO_CACHE``, else ``$XDG_CACHE_HOME/virnucpro``, else
  ``~/.cache/virnucpro``), fetched from the published VirNucPro repository
  https://github.com/Li-Jing-1997/VirNucPro, where ``300_model.pth`` and
  ``500_model.pth`` sit at the repository root (its README runs
  ``python prediction.py input.fasta 500 500_model.pth`` from a clone). The raw
  URL uses the ``main`` branch (:data:`CLASSIFIER_URL`); each download is
  checked by loading it with the safe loader before it enters the cache.

Network policy: connections time out after :data:`CONNECT_TIMEOUT_S` seconds
(host-name lookup included), and with ``offline=True``, ``VIRNUCPRO_OFFLINE=1``
or ``HF_HUB_OFFLINE=1`` nothing is fetched. A model that is neither cached nor
fetchable raises :class:`ModelNotAvailableError` with one line that names the
model, where it was looked for and the two ways to provide it.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import os
import re
import socket
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from virnucpro.errors import ModelNotAvailableError

logger = logging.getLogger(__name__)

DEFAULT_ESM_MODEL = "esm2_t36_3B_UR50D"
DEFAULT_DNABERT_MODEL = "zhihan1996/DNABERT-S"
CLASSIFIER_MODEL_TYPES = (300, 500)

ESM_MODEL_URL = "https://dl.fbaipublicfiles.com/fair-esm/models/{name}.pt"
ESM_REGRESSION_URL = "https://dl.fbaipublicfiles.com/fair-esm/regression/{name}-contact-regression.pt"
CLASSIFIER_REPOSITORY = "https://github.com/Li-Jing-1997/VirNucPro"
CLASSIFIER_URL = "https://raw.githubusercontent.com/Li-Jing-1997/VirNucPro/main/{model_type}_model.pth"

DNABERT_ALLOW_PATTERNS = ["config.json", "tokenizer.json", "tokenizer_config.json", "*.safetensors", "pytorch_model.bin"]
DNABERT_REQUIRED_FILES = ("config.json", "tokenizer.json")
DNABERT_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")

CONNECT_TIMEOUT_S = 10.0

# Options of `virnucpro predict` that take a local copy of each model (named in errors).
ESM_OPTION = "--esm-model"
DNABERT_OPTION = "--dnabert-model"
CLASSIFIER_OPTION = "--model-path"

_ESM_NAME = re.compile(r"^esm2_t\d+_\d+[KMB]_UR50D$")
_HF_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_TRUE = {"1", "true", "yes", "on"}
_CHUNK = 1 << 20
# What a failed transfer raises (URLError, HTTPError and timeouts are OSErrors).
_NETWORK_ERRORS = (OSError, http.client.HTTPException)


@dataclass(frozen=True)
class CachedModel:
    """One model found in a cache.

    Attributes:
        kind: ``esm``, ``dnabert``, ``classifier`` or ``demo``.
        name: model name (fair-esm name, Hugging Face repo id, file name or demo version).
        path: file or directory.
        size_bytes: total size on disk.
        complete: all files needed to use it are present.
    """

    kind: str
    name: str
    path: Path
    size_bytes: int
    complete: bool


# ---------------------------------------------------------------------------
# cache locations and offline policy


def cache_dir() -> Path:
    """Root of virnucpro's own cache (classifiers, demo models)."""
    if os.environ.get("VIRNUCPRO_CACHE"):
        return Path(os.environ["VIRNUCPRO_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "virnucpro"


def esm_hub_dir() -> Path:
    """Directory holding fair-esm checkpoints fetched by name (torch.hub's ``checkpoints``)."""
    import torch.hub  # here, not at module level: `virnucpro --help` must not import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache, read from the environment at call time."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "huggingface" / "hub"


def classifier_cache_path(model_type: int) -> Path:
    """Where the published ``<model_type>_model.pth`` is cached."""
    return cache_dir() / "classifiers" / f"{model_type}_model.pth"


def is_offline(offline: bool = False) -> bool:
    """True when downloads are disabled by the argument, ``VIRNUCPRO_OFFLINE`` or ``HF_HUB_OFFLINE``."""
    return offline or any(os.environ.get(v, "").strip().lower() in _TRUE for v in ("VIRNUCPRO_OFFLINE", "HF_HUB_OFFLINE"))


def _offline_reason(offline: bool) -> str:
    if offline:
        return "offline mode is on"
    for var in ("VIRNUCPRO_OFFLINE", "HF_HUB_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in _TRUE:
            return f"offline mode is on ({var}={os.environ[var]})"
    return "offline mode is on"


def _not_available(what: str, looked: Path, reason: str, download_args: str, option: str) -> ModelNotAvailableError:
    return ModelNotAvailableError(
        f"{what} is not available: not found in {looked} and {reason}; to provide it, run "
        f"`virnucpro models download {download_args}` on a machine with network access (and copy that "
        f"cache here), or pass a local copy with {option}"
    )


# ---------------------------------------------------------------------------
# ESM-2


def resolve_esm_model(spec: str = DEFAULT_ESM_MODEL, offline: bool = False) -> Path:
    """Path of an ESM-2 checkpoint: a local ``.pt`` file, or a fair-esm name fetched on first use.

    Args:
        spec: an existing file, or a fair-esm ESM-2 name such as ``esm2_t36_3B_UR50D``.
        offline: never download (also ``VIRNUCPRO_OFFLINE=1`` / ``HF_HUB_OFFLINE=1``).

    Returns:
        The checkpoint file (for a name, its contact-regression companion sits beside it).

    Raises:
        ModelNotAvailableError: unknown name, missing file, or not cached and not downloadable.
    """
    local = Path(spec).expanduser()
    if local.is_file():
        return local
    if not _ESM_NAME.match(spec):
        if local.suffix == ".pt" or os.sep in spec:
            raise ModelNotAvailableError(f"ESM-2 model file not found: {local}")
        raise ModelNotAvailableError(
            f"unknown ESM-2 model '{spec}': give a fair-esm ESM-2 name such as {DEFAULT_ESM_MODEL} "
            f"or an existing .pt file with {ESM_OPTION}"
        )
    model_path, regression_path = esm_cache_paths(spec)
    if model_path.is_file() and regression_path.is_file():
        return model_path
    what = f"ESM-2 model '{spec}'"
    args = f"esm --esm-model {spec}"
    option = f"{ESM_OPTION} FILE"
    if is_offline(offline):
        raise _not_available(what, model_path, _offline_reason(offline), args, option)
    try:
        for url, dest in ((ESM_MODEL_URL, model_path), (ESM_REGRESSION_URL, regression_path)):
            if not dest.is_file():
                download_file(url.format(name=spec), dest, label=dest.name)
    except _NETWORK_ERRORS as exc:
        raise _not_available(what, model_path, f"the download failed ({_short(exc)})", args, option) from exc
    return model_path


def esm_cache_paths(name: str) -> tuple[Path, Path]:
    """The checkpoint and contact-regression paths of a fair-esm model name in the torch.hub cache."""
    hub = esm_hub_dir()
    return hub / f"{name}.pt", hub / f"{name}-contact-regression.pt"


# ---------------------------------------------------------------------------
# DNABERT-S


def resolve_dnabert_model(spec: str = DEFAULT_DNABERT_MODEL, revision: str | None = None, offline: bool = False) -> Path:
    """Directory of a DNABERT-S checkpoint: a local directory, or a Hugging Face repo fetched on first use.

    Only ``config.json``, the tokenizer files and the weights are fetched (safetensors
    when the repo has them, else ``pytorch_model.bin``); no code is downloaded or run.

    Args:
        spec: an existing directory, or a Hugging Face repo id.
        revision: branch, tag or commit of the repo (``main`` when None).
        offline: never download (also ``VIRNUCPRO_OFFLINE=1`` / ``HF_HUB_OFFLINE=1``).

    Raises:
        ModelNotAvailableError: incomplete directory, bad repo id, or not cached and not downloadable.
    """
    local = Path(spec).expanduser()
    if local.is_dir():
        _check_dnabert_dir(local)
        return local
    if not _HF_REPO_ID.match(spec) or spec.startswith((".", "/", "~")):
        raise ModelNotAvailableError(f"DNABERT-S model directory not found: {local}")
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    cache = hf_cache_dir()
    rev = f"@{revision}" if revision else ""
    what = f"DNABERT-S model '{spec}{rev}'"
    args = f"dnabert --dnabert-model {spec}" + (f" --dnabert-revision {revision}" if revision else "")
    option = f"{DNABERT_OPTION} DIR"
    looked = cache / f"models--{spec.replace('/', '--')}"
    with contextlib.suppress(LocalEntryNotFoundError, OSError, ModelNotAvailableError):
        found = Path(_snapshot(huggingface_hub, spec, revision, cache, DNABERT_ALLOW_PATTERNS, local_only=True))
        _check_dnabert_dir(found)
        return found
    if is_offline(offline):
        raise _not_available(what, looked, _offline_reason(offline), args, option)
    try:
        _check_reachable(huggingface_hub.constants.ENDPOINT)
        files = huggingface_hub.HfApi().list_repo_files(spec, revision=revision)
        patterns = [p for p in DNABERT_ALLOW_PATTERNS if p != "pytorch_model.bin"]
        if not any(f.endswith(".safetensors") for f in files):
            patterns.append("pytorch_model.bin")
        found = Path(_snapshot(huggingface_hub, spec, revision, cache, patterns, local_only=False))
    except Exception as exc:  # noqa: BLE001 - network and hub errors alike become one line
        raise _not_available(what, looked, f"the download failed ({_short(exc)})", args, option) from exc
    _check_dnabert_dir(found)
    return found


def _snapshot(hub, repo_id: str, revision: str | None, cache: Path, patterns: list[str], local_only: bool) -> str:
    return hub.snapshot_download(
        repo_id,
        revision=revision,
        cache_dir=str(cache),
        allow_patterns=patterns,
        local_files_only=local_only,
        etag_timeout=CONNECT_TIMEOUT_S,
    )


def _check_dnabert_dir(directory: Path) -> None:
    missing = [name for name in DNABERT_REQUIRED_FILES if not (directory / name).is_file()]
    if not any((directory / name).is_file() for name in DNABERT_WEIGHT_FILES):
        missing.append(" or ".join(DNABERT_WEIGHT_FILES))
    if missing:
        raise ModelNotAvailableError(f"DNABERT-S directory {directory} is incomplete: missing {', '.join(missing)}")


# ---------------------------------------------------------------------------
# classifier


def resolve_classifier(model_type: int, model_path: str | Path | None = None, offline: bool = False) -> Path:
    """Path of the MLP classifier: a local file, or the published one for ``model_type`` fetched on first use.

    Args:
        model_type: chunk length the classifier was trained for (300 or 500).
        model_path: a local checkpoint; used as is when given.
        offline: never download (also ``VIRNUCPRO_OFFLINE=1`` / ``HF_HUB_OFFLINE=1``).

    Raises:
        ModelNotAvailableError: missing file, unknown model type, or not cached and not downloadable.
    """
    if model_path is not None:
        local = Path(model_path).expanduser()
        if not local.is_file():
            raise ModelNotAvailableError(f"classifier file not found: {local}")
        return local
    if model_type not in CLASSIFIER_MODEL_TYPES:
        raise ModelNotAvailableError(
            f"no published classifier for model type {model_type} (there are {', '.join(map(str, CLASSIFIER_MODEL_TYPES))}); "
            f"pass your own with {CLASSIFIER_OPTION} FILE"
        )
    dest = classifier_cache_path(model_type)
    if dest.is_file():
        return dest
    what = f"classifier '{model_type}_model.pth'"
    args = f"classifier --model-type {model_type}"
    option = f"{CLASSIFIER_OPTION} FILE"
    if is_offline(offline):
        raise _not_available(what, dest, _offline_reason(offline), args, option)
    url = CLASSIFIER_URL.format(model_type=model_type)
    try:
        download_file(url, dest, label=dest.name, validate=_validate_classifier)
    except _NETWORK_ERRORS as exc:
        raise _not_available(what, dest, f"the download failed ({_short(exc)})", args, option) from exc
    except ModelNotAvailableError as exc:
        raise ModelNotAvailableError(f"{what}: the file downloaded from {url} is not a usable classifier ({exc})") from exc
    return dest


def _validate_classifier(path: Path) -> None:
    from virnucpro.models.classifier import load_classifier

    load_classifier(path)  # raises ModelNotAvailableError / UnsafeCheckpointError


# ---------------------------------------------------------------------------
# download and list


def download(
    kind: str,
    *,
    model_type: int | None = None,
    esm_model: str = DEFAULT_ESM_MODEL,
    dnabert_model: str = DEFAULT_DNABERT_MODEL,
    dnabert_revision: str | None = None,
) -> list[Path]:
    """Fetch models into their caches (a no-op for those already there).

    Args:
        kind: ``esm``, ``dnabert``, ``classifier`` or ``all``.
        model_type: classifier to fetch (300 or 500); both when None.
        esm_model: fair-esm name for ``esm``.
        dnabert_model: Hugging Face repo id for ``dnabert``.
        dnabert_revision: branch, tag or commit for ``dnabert``.

    Returns:
        The resolved paths, in the order fetched.
    """
    if kind not in ("esm", "dnabert", "classifier", "all"):
        raise ValueError(f"unknown model kind {kind!r}")
    fetches: list[tuple[str, Callable[[], Path]]] = []
    if kind in ("esm", "all"):
        fetches.append((esm_model, lambda: resolve_esm_model(esm_model)))
    if kind in ("dnabert", "all"):
        fetches.append((dnabert_model, lambda: resolve_dnabert_model(dnabert_model, revision=dnabert_revision)))
    if kind in ("classifier", "all"):
        for mt in (model_type,) if model_type else CLASSIFIER_MODEL_TYPES:
            fetches.append((f"{mt}_model.pth", lambda mt=mt: resolve_classifier(mt)))
    # Try every model before failing, so one unreachable host does not hide the others' state.
    paths: list[Path] = []
    failures: list[tuple[str, ModelNotAvailableError]] = []
    for name, fetch in fetches:
        try:
            paths.append(fetch())
        except ModelNotAvailableError as exc:
            failures.append((name, exc))
    if len(failures) == 1:
        raise failures[0][1]
    if failures:
        for name, exc in failures:
            logger.error("%s: %s", name, exc)
        raise ModelNotAvailableError(
            f"{len(failures)} of {len(fetches)} models could not be fetched (each is logged above); "
            f"first: {failures[0][1]}"
        )
    for path in paths:
        logger.info("ready: %s", path)
    return paths


def list_cached() -> list[CachedModel]:
    """Every model found in the ESM, Hugging Face, classifier and demo caches."""
    found: list[CachedModel] = []
    hub = esm_hub_dir()
    if hub.is_dir():
        for ckpt in sorted(hub.glob("esm2_*.pt")):
            if ckpt.name.endswith("-contact-regression.pt"):
                continue
            regression = ckpt.with_name(f"{ckpt.stem}-contact-regression.pt")
            size = _size(ckpt) + (_size(regression) if regression.is_file() else 0)
            found.append(CachedModel("esm", ckpt.stem, ckpt, size, regression.is_file()))
    found.extend(_cached_dnabert())
    classifiers = cache_dir() / "classifiers"
    if classifiers.is_dir():
        for ckpt in sorted(classifiers.iterdir()):
            if ckpt.is_file() and ckpt.suffix in (".pth", ".pt", ".safetensors"):
                found.append(CachedModel("classifier", ckpt.name, ckpt, _size(ckpt), True))
    from virnucpro.models.demo import cached_demo_sets

    for version, directory, complete in cached_demo_sets(cache_dir()):
        found.append(CachedModel("demo", version, directory, _size(directory), complete))
    return found


def _cached_dnabert() -> Iterator[CachedModel]:
    from huggingface_hub import scan_cache_dir

    cache = hf_cache_dir()
    if not cache.is_dir():
        return
    try:
        info = scan_cache_dir(cache)
    except Exception as exc:  # noqa: BLE001 - an unreadable cache is reported, not fatal
        logger.warning("cannot read the Hugging Face cache %s: %s", cache, exc)
        return
    for repo in sorted(info.repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model" or "dnabert" not in repo.repo_id.lower():
            continue
        for rev in sorted(repo.revisions, key=lambda r: r.commit_hash):
            try:
                _check_dnabert_dir(Path(rev.snapshot_path))
                complete = True
            except ModelNotAvailableError:
                complete = False
            refs = ",".join(sorted(rev.refs)) or rev.commit_hash[:10]
            yield CachedModel("dnabert", f"{repo.repo_id}@{refs}", Path(rev.snapshot_path), rev.size_on_disk, complete)


def print_cached(models: list[CachedModel], stream: IO[str] | None = None) -> None:
    """Show cached models: a rich table on a terminal, tab-separated lines otherwise."""
    out = stream if stream is not None else sys.stdout
    headers = ("kind", "name", "where", "size", "status")
    rows = [(m.kind, m.name, str(m.path), human_size(m.size_bytes), "complete" if m.complete else "incomplete") for m in models]
    if not getattr(out, "isatty", lambda: False)():
        out.write("\t".join(headers) + "\n")
        for row in rows:
            out.write("\t".join(row) + "\n")
        if not rows:
            out.write("# no cached models\n")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="cached models")
    for header in headers:
        table.add_column(header, overflow="fold")
    for row in rows:
        table.add_row(*row)
    Console(file=out).print(table if rows else "no cached models")


def human_size(n: int) -> str:
    """``1536`` -> ``1.5 KiB``."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# ---------------------------------------------------------------------------
# one file over HTTPS, atomically


def download_file(url: str, dest: Path, *, label: str | None = None, validate=None, timeout: float = CONNECT_TIMEOUT_S) -> Path:
    """Download ``url`` to ``dest`` through a temporary file renamed into place.

    Concurrent callers for the same ``dest`` wait on a lock file and the second
    finds the file already there. A download that fails leaves nothing behind.

    Args:
        url: HTTP(S) URL.
        dest: final path.
        label: name shown in progress messages.
        validate: called with the temporary file before the rename; raises to reject it.
        timeout: seconds for the host-name lookup, the connection and each read.

    Raises:
        OSError: the host is unreachable, the server answered with an error, or the transfer broke.
    """
    from filelock import FileLock

    dest.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(dest) + ".lock"):
        if dest.is_file():
            return dest
        _check_reachable(url, timeout)
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.partial")
        try:
            request = urllib.request.Request(url, headers={"User-Agent": "virnucpro"})
            with urllib.request.urlopen(request, timeout=timeout) as response, tmp.open("wb") as out:
                total = int(response.headers.get("Content-Length") or 0)
                _copy_with_progress(response, out, total, label or dest.name)
            if validate is not None:
                validate(tmp)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
    logger.info("downloaded %s -> %s", url, dest)
    return dest


def _copy_with_progress(source: IO[bytes], out: IO[bytes], total: int, label: str) -> None:
    if sys.stderr.isatty():
        from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

        with Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn()) as bar:
            task = bar.add_task(f"downloading {label}", total=total or None)
            while chunk := source.read(_CHUNK):
                out.write(chunk)
                bar.advance(task, len(chunk))
        return
    logger.info("downloading %s (%s)", label, human_size(total) if total else "size unknown")
    done, next_report = 0, 0.1
    while chunk := source.read(_CHUNK):
        out.write(chunk)
        done += len(chunk)
        if total and done / total >= next_report:
            logger.info("  %s: %d%%", label, int(100 * done / total))
            next_report += 0.1


def _check_reachable(url: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Resolve the host of ``url`` within ``timeout`` seconds.

    The system resolver ignores socket timeouts, so without this a machine with
    a broken DNS set-up could wait minutes before the first connection attempt.
    """
    host = urllib.parse.urlsplit(url).hostname or url
    result: list[BaseException | None] = []

    def lookup() -> None:
        try:
            socket.getaddrinfo(host, 443)
            result.append(None)
        except OSError as exc:
            result.append(exc)

    worker = threading.Thread(target=lookup, daemon=True)
    worker.start()
    worker.join(timeout)
    if not result:
        raise TimeoutError(f"cannot resolve {host} within {timeout:.0f} s")
    if result[0] is not None:
        raise OSError(f"cannot resolve {host}: {result[0]}")


def _short(exc: BaseException) -> str:
    """One line for an exception: its type and the first non-empty line of its message."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else ""
    if isinstance(exc, urllib.error.HTTPError):
        text = f"HTTP {exc.code} {exc.reason}"
    elif isinstance(exc, urllib.error.URLError):
        text = str(exc.reason)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
