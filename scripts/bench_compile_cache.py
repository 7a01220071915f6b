"""Does the on-disk compile cache let a second run skip compiling? (issue 27)

Warms each demo engine up with ``--compile on`` in two fresh processes that share one
empty Inductor cache directory, and prints each process's warm-up and compile seconds:
the first process compiles, the second should load what the first stored.

    python scripts/bench_compile_cache.py [--models esm dnabert]

CPU figures on the demo models only; on a GPU the same script measures the real thing
once the models are the real ones (not wired here: the acceptance reports compile seconds).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

_CHILD = r"""
import json, sys, time
from pathlib import Path
import torch
from virnucpro.models.demo import ensure_demo_models
demo = ensure_demo_models(Path(sys.argv[1]))
if sys.argv[2] == "esm":
    from virnucpro.models.esm2 import load_esm2
    engine = load_esm2(demo.esm_path, torch.device("cpu"), torch.float32, "on")
else:
    from virnucpro.models.dnabert_s import load_dnabert_s
    engine = load_dnabert_s(demo.dnabert_dir, torch.device("cpu"), torch.float32, "on")
report = engine.warm_up(256)
print(json.dumps({"seconds": report["seconds"], "compile_seconds": report["compile_seconds"],
                  "compiled": report["compiled"], "variants": len(report.get("variants", []))}))
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["esm", "dnabert"], choices=["esm", "dnabert"])
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": os.path.join(scratch, "inductor")}
        models = os.path.join(scratch, "models")
        for model in args.models:
            runs = []
            for _ in range(2):
                out = subprocess.run([sys.executable, "-c", _CHILD, models, model], env=env, check=True,
                                     capture_output=True, text=True).stdout
                runs.append(json.loads(out.strip().splitlines()[-1]))
            first, second = runs
            print(f"{model}: first process warm-up {first['seconds']:.2f} s ({first['compile_seconds']:.2f} s "
                  f"compiling, {first['variants']} variants, compiled={first['compiled']}); second process "
                  f"{second['seconds']:.2f} s ({second['compile_seconds']:.2f} s); ratio "
                  f"{first['seconds'] / max(second['seconds'], 1e-9):.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
