"""README's option table of ``predict`` lists exactly the options ``virnucpro predict`` has."""

from __future__ import annotations

import re

from tests.conftest import REPO_ROOT
from virnucpro.cli.main import global_options
from virnucpro.cli.predict import predict


def readme_predict_options() -> set[str]:
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("### `predict`", 1)[1]
    rows = [line for line in section.split("\n\n")[2].splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"--[a-z][a-z0-9-]*", row.split("|")[1])}


def test_readme_table_lists_every_predict_option() -> None:
    globals_ = {opt for option in global_options() for opt in option.opts}
    options = {opt for param in predict.params for opt in getattr(param, "opts", ())
               if opt.startswith("--") and opt not in globals_} - {"--help", "--output-dir"}
    assert readme_predict_options() == options


def test_readme_gives_the_workers_default() -> None:
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    row = next(line for line in text.splitlines() if line.startswith("| `--workers"))
    assert "default 0" in row
