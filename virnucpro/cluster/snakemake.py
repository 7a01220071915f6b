"""``virnucpro workflow snakemake``: a ready Snakemake workflow for split -> predict per part -> merge.

Writes into WF_DIR::

    Snakefile        the packaged workflow (virnucpro/cluster/templates/Snakefile), unchanged
    predict-part.sh  what one predict job runs (shared with the SLURM array job)
    config.yaml      this run's values: input, parts, output, predict options, resources

The workflow reads only ``config.yaml``, so a lab edits values there (or
passes ``--config``) and never the Snakefile. Outputs::

    OUTPUT/                     merged results (prediction_results.txt, ...)
    OUTPUT/parts/               the split
    OUTPUT/runs/part-0001/ ...  one predict run per part (+ part-0001.finished flags)
    OUTPUT/logs/                one log per job

Several samples (``--input A --input B`` or ``--samples FILE``): WF_DIR also gets
``samples.tsv`` (``sample<TAB>path``, the sample sheet config.yaml names), and each
sample gets the layout above in ``OUTPUT/<sample>/`` (:mod:`.samples`); a last rule runs
``virnucpro merge --samples`` for ``OUTPUT/samples_summary.tsv`` and ``OUTPUT/run_summary.json``.

Resources per job are Snakemake's standard ones (``mem_mb``, ``runtime`` in
minutes, ``threads``) plus ``gpu`` for predict jobs when GPUs are asked for,
which the SLURM executor plugin turns into ``--gpus``; ``slurm_partition`` and
``slurm_account`` are added when given.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from virnucpro.cluster.samples import SHEET_NAME, write_sample_sheet
from virnucpro.cluster.slurm import HELPER, template_text
from virnucpro.errors import OutputError
from virnucpro.pipeline.checkpoint import atomic_write_text
from virnucpro.pipeline.run.samples import Sample

logger = logging.getLogger(__name__)

SNAKEFILE = "Snakefile"
CONFIG = "config.yaml"


@dataclass(frozen=True)
class WorkflowSettings:
    """What ``virnucpro workflow snakemake`` was asked for."""

    input_path: str
    parts: int
    output: Path
    predict_args: list[str] = field(default_factory=list)
    gpus_per_part: int = 0
    cpus_per_part: int = 4
    mem_mb: int = 32_000
    runtime_minutes: int = 24 * 60
    partition: str | None = None
    account: str | None = None
    virnucpro: str = ""
    #: Several samples: ``input_path`` is then unused and config.yaml names the sample sheet.
    samples: tuple[Sample, ...] = ()

    def config(self, sheet: Path | None = None) -> dict[str, Any]:
        """The values ``config.yaml`` holds (``sheet``: the sample sheet of several samples)."""
        out = self.output.resolve()
        light = {"threads": 1, "mem_mb": 4000, "runtime": min(self.runtime_minutes, 240)}
        where: dict[str, Any] = (
            {"samples": str(sheet.resolve()), "parts": self.parts, "output": str(out)} if sheet is not None else
            {"input": str(Path(self.input_path).resolve()), "parts": self.parts, "output": str(out),
             "parts_dir": str(out / "parts"), "runs_dir": str(out / "runs")})
        return {
            **where,
            "virnucpro": self.virnucpro or f"{sys.executable} -m virnucpro",
            "predict_args": list(self.predict_args),
            "slurm_partition": self.partition or "",
            "slurm_account": self.account or "",
            "resources": {
                "split": light,
                "predict": {"threads": self.cpus_per_part, "mem_mb": self.mem_mb, "runtime": self.runtime_minutes,
                            "gpu": self.gpus_per_part},
                "merge": light,
            },
        }


def to_yaml(value: Any, indent: int = 0) -> str:
    """A small YAML writer for nested mappings and lists of scalars.

    Scalars are written as JSON (a JSON string is a valid double-quoted YAML
    scalar), so no YAML library is needed to write what Snakemake reads.
    """
    pad = " " * indent
    if isinstance(value, Mapping):
        lines = []
        for key, item in value.items():
            if isinstance(item, Mapping) and item:
                lines.append(f"{pad}{key}:\n{to_yaml(item, indent + 2)}")
            elif isinstance(item, list) and item:
                lines.append(f"{pad}{key}:\n" + "".join(f"{pad}  - {json.dumps(v)}\n" for v in item))
            else:
                lines.append(f"{pad}{key}: {json.dumps(item)}\n")
        return "".join(lines)
    return f"{pad}{json.dumps(value)}\n"


def write_workflow(settings: WorkflowSettings, wf_dir: str | Path) -> Path:
    """Write Snakefile, predict-part.sh and config.yaml into ``wf_dir``; returns the Snakefile path."""
    target = Path(wf_dir)
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create directory {target}: {exc.strerror or exc}") from None
    header = (
        "# virnucpro workflow settings (written by `virnucpro workflow snakemake`; edit freely).\n"
        "# resources: mem_mb and runtime (minutes) per job; gpu = GPUs per predict job.\n"
    )
    sheet = None
    if settings.samples:
        sheet = write_sample_sheet(settings.samples, target / SHEET_NAME)
        header += "# samples: the sample sheet (sample<TAB>path per line); each sample -> output/<sample>/.\n"
    atomic_write_text(target / CONFIG, header + to_yaml(settings.config(sheet)))
    atomic_write_text(target / SNAKEFILE, template_text(SNAKEFILE))
    helper = atomic_write_text(target / HELPER, template_text(HELPER))
    helper.chmod(0o755)
    logger.info("workflow written to %s (%s%d parts -> %s)", target,
                f"{len(settings.samples)} samples, " if settings.samples else "", settings.parts, settings.output)
    return target / SNAKEFILE
