"""Stage 4 of ``predict``: join both feature files of each shard BY FRAME ID and classify every frame.

Writes ``work/scores/shard-NNNNN.tsv`` (+ ``.done`` under ``RunConfig.score_identity``).
One shard is one :class:`ScoreJob`, run by :func:`score_shard`: a picklable
job and a module-level function, so a pool process can run it as well as this one.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from virnucpro.errors import VirnucproError
from virnucpro.pipeline import results
from virnucpro.pipeline.checkpoint import atomic_write_text, make_dir, verify_done, write_done
from virnucpro.pipeline.model_kinds import MODEL_KINDS
from virnucpro.pipeline.outputs import RunPaths, shard_name
from virnucpro.pipeline.run_config import RunSetup
from virnucpro.pipeline.summary import RunState, StageReport
from virnucpro.pipeline.work_files import ShardInfo

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScoreJob:
    """Classify the frames of shard ``shard`` of the run in ``root`` and write its score file
    under ``identity`` (``classifier_path``: the classifier checkpoint)."""

    root: str
    shard: int
    identity: dict[str, Any]
    classifier_path: str


def score_identity(setup: RunSetup, shard: ShardInfo) -> dict[str, object]:
    """The identity one shard's score file is written and checked under."""
    inputs = {kind.name: kind.inputs_sha256(setup.paths, shard.index) for kind in MODEL_KINDS}
    return setup.config.score_identity(inputs)


def score_job(setup: RunSetup, shard: ShardInfo) -> ScoreJob:
    """The job that scores ``shard`` of this run."""
    return ScoreJob(str(setup.paths.root), shard.index, score_identity(setup, shard),
                    str(setup.models.classifier_path))


def shards_to_score(setup: RunSetup, shards: list[ShardInfo]) -> list[ShardInfo]:
    """The shards without a verified score file."""
    return [s for s in shards if not verify_done(setup.paths.shard_scores(s.index), score_identity(setup, s))]


_classifiers: dict[tuple[str, str], Any] = {}


def _classifier(path: str, identity: Any) -> Any:
    """The classifier at ``path`` (with this ``identity``) in float64, loaded once per process.

    Float64 makes each frame's score independent of which frames share its batch (float32
    matmuls round differently per batch shape); see results.probabilities_from_logits.
    """
    key = (path, repr(identity))
    if key not in _classifiers:
        from virnucpro.models.classifier import load_classifier

        _classifiers.clear()  # one classifier per run; a process running many runs keeps one
        _classifiers[key] = load_classifier(Path(path)).double().eval()
    return _classifiers[key]


def score_shard(job: ScoreJob) -> int:
    """Score one shard (see :class:`ScoreJob`); returns its frame count.

    Raises:
        VirnucproError: a feature file does not match its shard.
    """
    import torch

    from virnucpro.pipeline.features import shard_feature_matrix

    paths = RunPaths(Path(job.root))
    try:
        frame_ids, features = shard_feature_matrix(paths, job.shard)
    except (OSError, ValueError) as exc:
        raise VirnucproError(f"{shard_name(job.shard)}: {exc}; re-run to recompute it") from None
    with torch.inference_mode():
        logits = _classifier(job.classifier_path, job.identity.get("classifier"))(torch.from_numpy(features).double()).numpy()
    rows = results.frame_scores(frame_ids, results.probabilities_from_logits(logits))
    target = paths.shard_scores(job.shard)
    make_dir(paths.scores_dir)
    atomic_write_text(target, "".join(row.line() for row in rows))
    write_done(target, job.identity, frames=len(rows))
    return len(rows)


def score_stage(shards: list[ShardInfo], setup: RunSetup, state: RunState, reused: int) -> None:
    """Classify every frame of ``shards`` (``reused``: shards already scored, for the report)."""
    began = time.monotonic()
    report = state.stages["score"] = StageReport(reused_shards=reused)
    if not shards:
        return
    for shard in shards:
        report.frames += score_shard(score_job(setup, shard))
        report.computed_shards += 1
    report.seconds = time.monotonic() - began
    logger.info("score: %d frame(s) in %d shard(s)", report.frames, report.computed_shards)
