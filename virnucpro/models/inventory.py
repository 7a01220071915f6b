"""What the model caches hold: every ESM-2, DNABERT-S, classifier and demo model found, complete or not,
and the downloads left unfinished there (which the next download continues).

Read by ``virnucpro models list`` and ``doctor``; it only looks, never fetches.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from virnucpro.errors import ModelNotAvailableError
from virnucpro.models.demo import cached_demo_sets
from virnucpro.models.locations import cache_dir, esm_hub_dir, hf_cache_dir
from virnucpro.models.registry import check_dnabert_dir
from virnucpro.net import PartialDownload, find_partials
from virnucpro.sizes import disk_size

logger = logging.getLogger(__name__)


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


def list_cached() -> list[CachedModel]:
    """Every model found in the ESM, Hugging Face, classifier and demo caches."""
    found: list[CachedModel] = []
    hub = esm_hub_dir()
    if hub.is_dir():
        for ckpt in sorted(hub.glob("esm2_*.pt")):
            if ckpt.name.endswith("-contact-regression.pt"):
                continue
            regression = ckpt.with_name(f"{ckpt.stem}-contact-regression.pt")
            size = disk_size(ckpt) + (disk_size(regression) if regression.is_file() else 0)
            found.append(CachedModel("esm", ckpt.stem, ckpt, size, regression.is_file()))
    found.extend(_cached_dnabert())
    classifiers = cache_dir() / "classifiers"
    if classifiers.is_dir():
        for ckpt in sorted(classifiers.iterdir()):
            if ckpt.is_file() and ckpt.suffix in (".pth", ".pt", ".safetensors"):
                found.append(CachedModel("classifier", ckpt.name, ckpt, disk_size(ckpt), True))
    for version, directory, complete in cached_demo_sets(cache_dir()):
        found.append(CachedModel("demo", version, directory, disk_size(directory), complete))
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
                check_dnabert_dir(Path(rev.snapshot_path))
                complete = True
            except ModelNotAvailableError:
                complete = False
            refs = ",".join(sorted(rev.refs)) or rev.commit_hash[:10]
            yield CachedModel("dnabert", f"{repo.repo_id}@{refs}", Path(rev.snapshot_path), rev.size_on_disk, complete)


def list_partial_downloads() -> list[PartialDownload]:
    """Unfinished downloads in the caches: ``*.part`` beside ESM-2 checkpoints and classifiers
    (:func:`virnucpro.net.download_file`), and huggingface_hub's ``blobs/*.incomplete``."""
    found = find_partials(esm_hub_dir()) + find_partials(cache_dir() / "classifiers")
    hf = hf_cache_dir()
    if hf.is_dir():
        for blob in sorted(hf.glob("models--*/blobs/*.incomplete")):
            try:
                found.append(PartialDownload(blob, blob.stat().st_size, None, None))
            except OSError:
                continue
    return found
