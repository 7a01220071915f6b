"""One finished ``predict --keep-features`` run on the fixture models, shared by several test modules.

The run is made once per test session (the first module that asks pays for it)
so the plot, feature-export and write-failure tests cost one predict, not three.
"""

from __future__ import annotations

from pathlib import Path

from tests.conftest import run_cli
from tests.integration.test_predict_fixture import fixture_args

#: Shard size of the shared run; the write-failure test needs every shard file
#: to be smaller than prediction_results.txt (about 21 kB), so shards are small.
SHARD_SIZE = "30"

_RUN: list[Path] = []


def shared_kept_run(tmp_path_factory) -> Path:
    """The output directory of the shared run (made on first use)."""
    if not _RUN:
        out = tmp_path_factory.mktemp("shared-kept-run") / "out"
        result = run_cli(*fixture_args(out, "--keep-features", "--shard-size", SHARD_SIZE))
        assert result.returncode == 0, result.stderr.decode()
        _RUN.append(out)
    return _RUN[0]
