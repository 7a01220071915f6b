"""Where the model caches are, and whether downloading is allowed: read from the environment at call time.

A leaf module (no virnucpro imports, no torch at import time), so the
registry, the demo set, the cache listing and ``doctor`` can all use it.
"""

from __future__ import annotations

import os
from pathlib import Path

_TRUE = {"1", "true", "yes", "on"}
OFFLINE_VARIABLES = ("VIRNUCPRO_OFFLINE", "HF_HUB_OFFLINE")


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


def esm_cache_paths(name: str) -> tuple[Path, Path]:
    """The checkpoint and contact-regression paths of a fair-esm model name in the torch.hub cache."""
    hub = esm_hub_dir()
    return hub / f"{name}.pt", hub / f"{name}-contact-regression.pt"


def is_offline(offline: bool = False) -> bool:
    """True when downloads are disabled by the argument, ``VIRNUCPRO_OFFLINE`` or ``HF_HUB_OFFLINE``."""
    return offline or any(os.environ.get(v, "").strip().lower() in _TRUE for v in OFFLINE_VARIABLES)


def offline_reason(offline: bool) -> str:
    """Why downloads are off, naming the variable that turned them off."""
    if offline:
        return "offline mode is on"
    for var in OFFLINE_VARIABLES:
        if os.environ.get(var, "").strip().lower() in _TRUE:
            return f"offline mode is on ({var}={os.environ[var]})"
    return "offline mode is on"


def unwritable_reason(directory: Path) -> str | None:
    """Why nothing can be written under ``directory`` (created if missing), or None when it can.

    Probes with a real file: as root, permission bits say nothing, and a
    read-only mount only shows itself on a write.
    """
    import errno
    import tempfile

    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory, prefix=".write-probe-"):
            pass
    except OSError as exc:
        if exc.errno == errno.EROFS:
            return "read-only file system"
        return exc.strerror or type(exc).__name__
    return None
