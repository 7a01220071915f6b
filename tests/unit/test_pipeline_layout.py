"""The pipeline folder's layout is its architecture: these rules keep it so.

- ``workqueue`` is a generic engine: it imports nothing of VirNucPro but
  :mod:`virnucpro.errors` (no stage, model, run decision or report);
- the run's decisions (``run``) and the outputs side (``report``) never import
  a stage's body, so a stage can change without touching them;
- ``virnucpro/pipeline/`` itself holds only the table of contents and the few
  modules the design names there, and no module grows past ~500 lines.
"""

from __future__ import annotations

from pathlib import Path

from tests.unit.test_no_import_cycles import PACKAGE_ROOT, import_graph

PIPELINE = PACKAGE_ROOT / "pipeline"
STAGE_BODIES = {f"virnucpro.pipeline.stages.{name}" for name in ("translate", "stream", "embed", "score", "score_pool", "assemble")}


def _imports_of(package: str) -> dict[str, set[str]]:
    return {mod: deps for mod, deps in import_graph().items() if mod == package or mod.startswith(package + ".")}


def test_workqueue_imports_nothing_of_virnucpro_but_errors() -> None:
    graph = _imports_of("virnucpro.pipeline.workqueue")
    assert "virnucpro.pipeline.workqueue.manager" in graph
    outside = {
        (mod, dep)
        for mod, deps in graph.items()
        for dep in deps
        if not dep.startswith("virnucpro.pipeline.workqueue") and dep != "virnucpro.errors"
    }
    assert outside == set()


def test_run_and_report_never_import_a_stage_body() -> None:
    for package in ("virnucpro.pipeline.run", "virnucpro.pipeline.report"):
        graph = _imports_of(package)
        assert len(graph) > 3, package
        assert {(mod, dep) for mod, deps in graph.items() for dep in deps if dep in STAGE_BODIES} == set()


def test_pipeline_top_level_is_small_and_has_no_prefixed_modules() -> None:
    top = sorted(p.name for p in PIPELINE.glob("*.py"))
    assert len(top) <= 12, top
    assert {"prediction.py", "parallel.py", "parallel_esm.py"} <= set(top)
    assert [name for name in top if name.startswith(("work_", "run_")) or name.endswith("_stage.py")] == []
    assert {p.name for p in PIPELINE.iterdir() if p.is_dir() and (p / "__init__.py").exists()} == {
        "workqueue", "run", "stages", "report"}


def test_no_pipeline_module_is_longer_than_about_500_lines() -> None:
    long = {str(p.relative_to(PIPELINE)): n for p in PIPELINE.rglob("*.py")
            if (n := len(Path(p).read_text(encoding="utf-8").splitlines())) > 520}
    assert long == {}
