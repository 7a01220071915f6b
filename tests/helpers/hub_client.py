"""Run in a child process (``HF_ENDPOINT`` is read when huggingface_hub is imported): fetch a
DNABERT-S repo through the registry, resolve it again offline, and print what happened as JSON.

Usage: ``python tests/helpers/hub_client.py REPO_ID`` with ``HF_ENDPOINT`` and ``HF_HOME`` set.
"""

from __future__ import annotations

import json
import logging
import sys

import huggingface_hub

from virnucpro.models.inventory import list_cached, list_partial_downloads
from virnucpro.models.registry import resolve_dnabert_model

logging.basicConfig(level=logging.INFO, stream=sys.stderr)
path = resolve_dnabert_model(sys.argv[1])
again = resolve_dnabert_model(sys.argv[1], offline=True)
print(json.dumps({
    "version": huggingface_hub.__version__,
    "module": huggingface_hub.__file__,
    "path": str(path),
    "again": str(again),
    "files": {p.name: p.read_bytes().hex() for p in sorted(path.iterdir())},
    "listed": [(m.name, m.complete) for m in list_cached() if m.kind == "dnabert"],
    "partials": [str(p.path) for p in list_partial_downloads()],
}))
