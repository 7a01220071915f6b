"""Model resolution: which file or directory each model is, fetched on first use when allowed.

Where each model lives:

- ESM-2 (fair-esm): ``torch.hub.get_dir()/checkpoints/<name>.pt`` plus
  ``<name>-contact-regression.pt`` (``$TORCH_HOME`` respected), fetched by
  :func:`virnucpro.net.download_file` (resumed, retried) from fair-esm's public
  URLs (:data:`ESM_MODEL_URL`, :data:`ESM_REGRESSION_URL`) or a mirror
  (``$VIRNUCPRO_ESM_URL`` or ``models download --esm-url``: see :func:`esm_urls`).
- DNABERT-S: the Hugging Face cache (``$HF_HUB_CACHE``, else ``$HF_HOME/hub``),
  through ``huggingface_hub.snapshot_download``; only the config, tokenizer and
  weight files are fetched, never modelling code (no ``trust_remote_code``).
  huggingface_hub continues its own partial files (``blobs/*.incomplete``, since
  0.23, so at our floor 0.25); a try that fails for a transient reason is
  retried here (:func:`~virnucpro.net.download_attempts` tries, growing pauses)
  and continues them. A mirror is ``$HF_ENDPOINT``, read by huggingface_hub.
- Classifiers: ``$VIRNUCPRO_CACHE/classifiers/{300,500}_model.pth`` (cache root:
  ``$VIRNUCPRO_CACHE``, else ``$XDG_CACHE_HOME/virnucpro``, else
  ``~/.cache/virnucpro``), fetched from the published VirNucPro repository
  https://github.com/Li-Jing-1997/VirNucPro, where ``300_model.pth`` and
  ``500_model.pth`` sit at the repository root (its README runs
  ``python prediction.py input.fasta 500 500_model.pth`` from a clone). The raw
  URL is pinned to commit :data:`CLASSIFIER_COMMIT` (:data:`CLASSIFIER_URL`), and
  each download must have the git blob id of :data:`CLASSIFIER_BLOBS` (checked on
  the temporary file, before it enters the cache) and load with the safe loader.
  A mirror (``$VIRNUCPRO_CLASSIFIER_URL`` or ``models download --classifier-url``)
  is held to the same blob ids; a different classifier is used only through
  ``--model-path``, and every run records the classifier's blob id.

A cache that cannot be written (read-only mount, no permission) still serves
what it holds; a model it lacks fails with one line naming the directory.

Cache locations and the offline switches live in :mod:`virnucpro.models.locations`,
the transfers in :mod:`virnucpro.net`, the cache listing in
:mod:`virnucpro.models.inventory`.

Network policy: connections time out after :data:`~virnucpro.net.CONNECT_TIMEOUT_S`
seconds (host-name lookup included), and with ``offline=True``, ``VIRNUCPRO_OFFLINE=1``
or ``HF_HUB_OFFLINE=1`` nothing is fetched. A model that is neither cached nor
fetchable raises :class:`ModelNotAvailableError` with one line that names the
model, where it was looked for and the two ways to provide it.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import time
from collections.abc import Callable
from pathlib import Path

from virnucpro.errors import ClassifierMismatchError, ModelNotAvailableError
from virnucpro.models.locations import (  # re-exported: callers find the caches through the registry
    cache_dir,
    classifier_cache_path,
    esm_cache_paths,
    esm_hub_dir,
    hf_cache_dir,
    is_offline,
    offline_reason,
    unwritable_reason,
)
from virnucpro.net import (
    BACKOFF_S,
    CONNECT_TIMEOUT_S,
    NETWORK_ERRORS,
    TRANSIENT_STATUS,
    download_attempts,
    download_file,
    is_transient,
    resolve_host,
    retry_delay,
    short_error,
)

__all__ = [
    "CLASSIFIER_MODEL_TYPES", "DEFAULT_DNABERT_MODEL", "DEFAULT_ESM_MODEL", "ESM_NAME", "HF_REPO_ID",
    "CLASSIFIER_BLOBS", "CLASSIFIER_COMMIT", "ClassifierMismatchError",
    "cache_dir", "check_dnabert_dir", "classifier_cache_path", "classifier_url", "download", "git_blob_sha1", "esm_cache_paths", "esm_hub_dir",
    "esm_urls", "hub_error_is_transient",
    "hf_cache_dir", "is_hub_repo_id", "is_offline", "resolve_classifier", "resolve_dnabert_model", "resolve_esm_model",
]

logger = logging.getLogger(__name__)

DEFAULT_ESM_MODEL = "esm2_t36_3B_UR50D"
DEFAULT_DNABERT_MODEL = "zhihan1996/DNABERT-S"
CLASSIFIER_MODEL_TYPES = (300, 500)

ESM_MODEL_URL = "https://dl.fbaipublicfiles.com/fair-esm/models/{name}.pt"
ESM_REGRESSION_URL = "https://dl.fbaipublicfiles.com/fair-esm/regression/{name}-contact-regression.pt"
CLASSIFIER_REPOSITORY = "https://github.com/Li-Jing-1997/VirNucPro"
#: The commit of the published repository whose classifiers we fetch (never a moving branch).
CLASSIFIER_COMMIT = "0f93f2755a7ea1acd3ff1bcf182892f960ef3326"
CLASSIFIER_URL = f"https://raw.githubusercontent.com/Li-Jing-1997/VirNucPro/{CLASSIFIER_COMMIT}/{{model_type}}_model.pth"
#: Git blob ids (``git hash-object``) of the published classifiers at :data:`CLASSIFIER_COMMIT`.
CLASSIFIER_BLOBS = {
    300: "a0b5b85e7c1e44f00cde146d091beb82b2c8e855",
    500: "fc35d5ef9f1f4564eea7036f34f4f8ec6000d33d",
}
#: A mirror of the published classifiers: a base URL (``<base>/500_model.pth``) or a
#: template containing ``{model_type}``. Its files must still match :data:`CLASSIFIER_BLOBS`.
CLASSIFIER_URL_VARIABLE = "VIRNUCPRO_CLASSIFIER_URL"

DNABERT_ALLOW_PATTERNS = ["config.json", "tokenizer.json", "tokenizer_config.json", "*.safetensors", "pytorch_model.bin"]
DNABERT_REQUIRED_FILES = ("config.json", "tokenizer.json")
DNABERT_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")

# Options of `virnucpro predict` that take a local copy of each model (named in errors).
ESM_OPTION = "--esm-model"
DNABERT_OPTION = "--dnabert-model"
CLASSIFIER_OPTION = "--model-path"

#: A mirror of the ESM-2 files: a base URL holding ``<name>.pt`` and ``<name>-contact-regression.pt``
#: side by side (a copy of torch.hub's ``checkpoints`` directory), or a template containing ``{file}``.
ESM_URL_VARIABLE = "VIRNUCPRO_ESM_URL"
#: The Hugging Face endpoint (huggingface_hub reads it when imported): a mirror of the hub's API and files.
HF_ENDPOINT_VARIABLE = "HF_ENDPOINT"

#: A fair-esm ESM-2 model name (``esm2_t36_3B_UR50D``).
ESM_NAME = re.compile(r"^esm2_t\d+_\d+[KMB]_UR50D$")
#: A Hugging Face repo id (``zhihan1996/DNABERT-S``); see also :func:`is_hub_repo_id`.
HF_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def is_hub_repo_id(spec: str) -> bool:
    """True when ``spec`` is not an existing directory and reads as a Hugging Face repo id."""
    return not Path(spec).expanduser().is_dir() and bool(HF_REPO_ID.match(spec)) and not spec.startswith((".", "/", "~"))


def git_blob_sha1(path: Path) -> str:
    """The id git gives ``path``'s content: sha1 of ``b"blob <size>\\0"`` followed by the bytes."""
    import hashlib

    digest = hashlib.sha1()
    with path.open("rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        digest.update(f"blob {size}\0".encode())
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _unwritable(what: str, directory: Path, reason: str, variable: str, option: str) -> ModelNotAvailableError:
    return ModelNotAvailableError(
        f"{what} is not cached and the cache {directory} cannot be written ({reason}): set {variable} to a "
        f"writable directory (or fill this cache where it is writable), or pass a local copy with {option}"
    )


def _not_available(what: str, looked: Path, reason: str, download_args: str, option: str) -> ModelNotAvailableError:
    return ModelNotAvailableError(
        f"{what} is not available: not found in {looked} and {reason}; to provide it, run "
        f"`virnucpro models download {download_args}` on a machine with network access (and copy that "
        f"cache here), or pass a local copy with {option}"
    )


# ---------------------------------------------------------------------------
# ESM-2


def esm_urls(name: str, mirror: str | None = None) -> tuple[str, str]:
    """Where the checkpoint and the contact-regression file of ESM-2 ``name`` are fetched from.

    Args:
        name: a fair-esm ESM-2 name.
        mirror: a base URL (``<base>/<name>.pt``, ``<base>/<name>-contact-regression.pt``) or a
            template with ``{file}``; ``$VIRNUCPRO_ESM_URL`` when None, else fair-esm's URLs.
    """
    source = mirror or os.environ.get(ESM_URL_VARIABLE, "").strip()
    files = (f"{name}.pt", f"{name}-contact-regression.pt")
    if not source:
        return ESM_MODEL_URL.format(name=name), ESM_REGRESSION_URL.format(name=name)
    if "{file}" in source:
        return source.format(file=files[0]), source.format(file=files[1])
    base = source.rstrip("/")
    return f"{base}/{files[0]}", f"{base}/{files[1]}"


def resolve_esm_model(spec: str = DEFAULT_ESM_MODEL, offline: bool = False, url: str | None = None) -> Path:
    """Path of an ESM-2 checkpoint: a local ``.pt`` file, or a fair-esm name fetched on first use.

    Args:
        spec: an existing file, or a fair-esm ESM-2 name such as ``esm2_t36_3B_UR50D``.
        offline: never download (also ``VIRNUCPRO_OFFLINE=1`` / ``HF_HUB_OFFLINE=1``).
        url: fetch from this mirror (see :func:`esm_urls`) instead of fair-esm's URLs.

    Returns:
        The checkpoint file (for a name, its contact-regression companion sits beside it).

    Raises:
        ModelNotAvailableError: unknown name, missing file, or not cached and not downloadable.
    """
    local = Path(spec).expanduser()
    if local.is_file():
        return local
    if not ESM_NAME.match(spec):
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
        raise _not_available(what, model_path, offline_reason(offline), args, option)
    if reason := unwritable_reason(model_path.parent):
        raise _unwritable(what, model_path.parent, reason, "TORCH_HOME", option)
    source = ""
    try:
        for source, dest in zip(esm_urls(spec, url), (model_path, regression_path)):
            if not dest.is_file():
                download_file(source, dest, label=dest.name)
    except NETWORK_ERRORS as exc:
        raise _not_available(what, model_path, f"the download failed ({short_error(exc)}; URL {source})", args,
                             option) from exc
    return model_path


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
        check_dnabert_dir(local)
        return local
    if not HF_REPO_ID.match(spec) or spec.startswith((".", "/", "~")):
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
        check_dnabert_dir(found)
        return found
    if is_offline(offline):
        raise _not_available(what, looked, offline_reason(offline), args, option)
    if reason := unwritable_reason(cache):
        variable = "HF_HUB_CACHE" if os.environ.get("HF_HUB_CACHE") else "HF_HOME"
        raise _unwritable(what, cache, reason, variable, option)
    endpoint = huggingface_hub.constants.ENDPOINT

    def fetch() -> Path:
        files = huggingface_hub.HfApi(endpoint=endpoint).list_repo_files(spec, revision=revision)
        patterns = [p for p in DNABERT_ALLOW_PATTERNS if p != "pytorch_model.bin"]
        if not any(f.endswith(".safetensors") for f in files):
            patterns.append("pytorch_model.bin")
        return Path(_snapshot(huggingface_hub, spec, revision, cache, patterns, local_only=False))

    try:
        resolve_host(endpoint)
        found = _with_retries(fetch, what)
    except Exception as exc:  # noqa: BLE001 - network and hub errors alike become one line
        raise _not_available(what, looked, f"the download failed ({short_error(exc)}; endpoint {endpoint})", args,
                             option) from exc
    check_dnabert_dir(found)
    return found


# What huggingface_hub's HTTP clients (requests before 1.0, httpx after) raise for a lost
# connection or a timeout; their classes are not imported (either library may be absent).
_HUB_TRANSIENT_NAMES = frozenset({
    "ConnectionError", "ConnectTimeout", "ReadTimeout", "Timeout", "ChunkedEncodingError", "ConnectError",
    "ReadError", "WriteError", "RemoteProtocolError", "PoolTimeout", "WriteTimeout", "TimeoutException",
})


def hub_error_is_transient(exc: BaseException) -> bool:
    """True when a huggingface_hub failure (or what caused it) may pass on another try: an HTTP
    status in :data:`~virnucpro.net.TRANSIENT_STATUS`, a lost connection or a timeout."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        status = getattr(getattr(current, "response", None), "status_code", None)
        if isinstance(status, int):
            return status in TRANSIENT_STATUS
        if is_transient(current) or type(current).__name__ in _HUB_TRANSIENT_NAMES:
            return True
        current = current.__cause__ or current.__context__
    return False


def _with_retries(fetch: Callable[[], Path], what: str, backoff_s: float = BACKOFF_S) -> Path:
    """Call ``fetch`` until it succeeds, retrying transient hub failures after a growing pause
    (each logged); huggingface_hub continues its partial files on the next try."""
    attempts = download_attempts()
    for attempt in range(1, attempts + 1):
        try:
            return fetch()
        except Exception as exc:
            if attempt == attempts or not hub_error_is_transient(exc):
                raise
            delay = retry_delay(exc, attempt, backoff_s)
            logger.warning("%s: try %d of %d failed (%s); retrying in %.0f s", what, attempt, attempts,
                           short_error(exc), delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


def _snapshot(hub, repo_id: str, revision: str | None, cache: Path, patterns: list[str], local_only: bool) -> str:
    return hub.snapshot_download(
        repo_id,
        revision=revision,
        cache_dir=str(cache),
        allow_patterns=patterns,
        local_files_only=local_only,
        etag_timeout=CONNECT_TIMEOUT_S,
    )


def check_dnabert_dir(directory: Path) -> None:
    """Raise :class:`ModelNotAvailableError` unless ``directory`` holds config, tokenizer and weights."""
    missing = [name for name in DNABERT_REQUIRED_FILES if not (directory / name).is_file()]
    if not any((directory / name).is_file() for name in DNABERT_WEIGHT_FILES):
        missing.append(" or ".join(DNABERT_WEIGHT_FILES))
    if missing:
        raise ModelNotAvailableError(f"DNABERT-S directory {directory} is incomplete: missing {', '.join(missing)}")


# ---------------------------------------------------------------------------
# classifier


def classifier_url(model_type: int, mirror: str | None = None) -> str:
    """Where the published ``<model_type>_model.pth`` is fetched from.

    Args:
        model_type: 300 or 500.
        mirror: a base URL or a template with ``{model_type}``; ``$VIRNUCPRO_CLASSIFIER_URL``
            when None, else the pinned GitHub URL (:data:`CLASSIFIER_URL`).
    """
    source = mirror or os.environ.get(CLASSIFIER_URL_VARIABLE, "").strip()
    if not source:
        return CLASSIFIER_URL.format(model_type=model_type)
    if "{model_type}" in source:
        return source.format(model_type=model_type)
    return f"{source.rstrip('/')}/{model_type}_model.pth"


def resolve_classifier(
    model_type: int, model_path: str | Path | None = None, offline: bool = False, url: str | None = None,
) -> Path:
    """Path of the MLP classifier: a local file, or the published one for ``model_type`` fetched on first use.

    A fetched file is kept only when its git blob id is :data:`CLASSIFIER_BLOBS` ``[model_type]``
    and it loads with the safe loader; both are checked before it is moved into the cache.

    Args:
        model_type: chunk length the classifier was trained for (300 or 500).
        model_path: a local checkpoint; used as is when given (not checked against the pin).
        offline: never download (also ``VIRNUCPRO_OFFLINE=1`` / ``HF_HUB_OFFLINE=1``).
        url: fetch from this mirror (see :func:`classifier_url`) instead of the pinned URL.

    Raises:
        ClassifierMismatchError: the downloaded file is not the published one (nothing is kept).
        ModelNotAvailableError: missing file, unknown model type, unwritable cache, or not
            cached and not downloadable.
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
        _warn_if_not_published(dest, model_type)
        return dest
    what = f"classifier '{model_type}_model.pth'"
    args = f"classifier --model-type {model_type}"
    option = f"{CLASSIFIER_OPTION} FILE"
    if is_offline(offline):
        raise _not_available(what, dest, offline_reason(offline), args, option)
    if reason := unwritable_reason(dest.parent):
        raise _unwritable(what, dest.parent, reason, "VIRNUCPRO_CACHE", option)
    source = classifier_url(model_type, url)

    def validate(path: Path) -> None:
        found, expected = git_blob_sha1(path), CLASSIFIER_BLOBS[model_type]
        if found != expected:
            raise ClassifierMismatchError(
                f"{what} downloaded from {source} is not the published file: git blob {found}, expected {expected} "
                f"(Li-Jing-1997/VirNucPro at {CLASSIFIER_COMMIT[:12]}); it was not kept. Use the pinned source, "
                f"or pass a classifier you trust with {option}"
            )
        _validate_classifier(path)

    try:
        download_file(source, dest, label=dest.name, validate=validate)
    except NETWORK_ERRORS as exc:
        raise _not_available(what, dest, f"the download failed ({short_error(exc)}; URL {source})", args, option) from exc
    except ClassifierMismatchError:
        raise
    except ModelNotAvailableError as exc:
        raise ModelNotAvailableError(f"{what}: the file downloaded from {source} is not a usable classifier ({exc})") from exc
    logger.info("%s: git blob %s verified (pinned at Li-Jing-1997/VirNucPro %s)", dest.name,
                CLASSIFIER_BLOBS[model_type], CLASSIFIER_COMMIT[:12])
    return dest


def _warn_if_not_published(path: Path, model_type: int) -> None:
    """A cached classifier that is not the pinned file (copied in by hand, or fetched by an older version)."""
    try:
        found = git_blob_sha1(path)
    except OSError:
        return  # loading it reports the problem with the file's name
    if found != CLASSIFIER_BLOBS[model_type]:
        logger.warning(
            "cached %s is not the published classifier (git blob %s, expected %s); it is used as is: delete it "
            "to fetch the published one, or pass your own file with %s", path, found, CLASSIFIER_BLOBS[model_type],
            CLASSIFIER_OPTION,
        )


def _validate_classifier(path: Path) -> None:
    from virnucpro.models.classifier import load_classifier

    load_classifier(path)  # raises ModelNotAvailableError / UnsafeCheckpointError


# ---------------------------------------------------------------------------
# fetching several models


def download(
    kind: str,
    *,
    model_type: int | None = None,
    esm_model: str = DEFAULT_ESM_MODEL,
    dnabert_model: str = DEFAULT_DNABERT_MODEL,
    dnabert_revision: str | None = None,
    classifier_url: str | None = None,
    esm_url: str | None = None,
) -> list[Path]:
    """Fetch models into their caches (a no-op for those already there).

    Args:
        kind: ``esm``, ``dnabert``, ``classifier`` or ``all``.
        model_type: classifier to fetch (300 or 500); both when None.
        esm_model: fair-esm name for ``esm``.
        dnabert_model: Hugging Face repo id for ``dnabert``.
        dnabert_revision: branch, tag or commit for ``dnabert``.
        classifier_url: mirror of the published classifiers (see :func:`classifier_url`);
            its files must still match the pinned blob ids.
        esm_url: mirror of the ESM-2 files (see :func:`esm_urls`).

    Returns:
        The resolved paths, in the order fetched.
    """
    if kind not in ("esm", "dnabert", "classifier", "all"):
        raise ValueError(f"unknown model kind {kind!r}")
    fetches: list[tuple[str, Callable[[], Path]]] = []
    if kind in ("esm", "all"):
        fetches.append((esm_model, lambda: resolve_esm_model(esm_model, url=esm_url)))
    if kind in ("dnabert", "all"):
        fetches.append((dnabert_model, lambda: resolve_dnabert_model(dnabert_model, revision=dnabert_revision)))
    if kind in ("classifier", "all"):
        for mt in (model_type,) if model_type else CLASSIFIER_MODEL_TYPES:
            fetches.append((f"{mt}_model.pth", functools.partial(resolve_classifier, mt, url=classifier_url)))
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
        for name, failure in failures:
            logger.error("%s: %s", name, failure)
        raise ModelNotAvailableError(
            f"{len(failures)} of {len(fetches)} models could not be fetched (each is logged above); "
            f"first: {failures[0][1]}"
        )
    for path in paths:
        logger.info("ready: %s", path)
    return paths
