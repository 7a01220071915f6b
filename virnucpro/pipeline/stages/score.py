"""Stage 4 of ``predict``: join both feature files of each shard BY FRAME ID and classify every frame.

Writes ``work/scores/shard-NNNNN.tsv`` (+ ``.done`` under ``RunConfig.score_identity``).
One shard is one :class:`ScoreJob`, run by :func:`score_shard`: a picklable
job and a module-level function, so a pool process can run it as well as this one
(:mod:`.score_pool` scores shards that way while the last embedding stage runs;
:func:`score_stage` then scores whatever is left here, serially). A shard may be
scored only once :func:`score_ready` says so.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from virnucpro.errors import VirnucproError
from virnucpro.pipeline.checkpoint import atomic_write_text, make_dir, verify_done, write_done
from virnucpro.pipeline.model_kinds import MODEL_KINDS
from virnucpro.pipeline.outputs import RunPaths, shard_name
from virnucpro.pipeline.report import results
from virnucpro.pipeline.report.summary import RunState, StageReport
from virnucpro.pipeline.run.config import RunSetup
from virnucpro.pipeline.stages.work_files import ShardInfo

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


def score_ready(setup: RunSetup, shard: ShardInfo) -> bool:
    """True when ``shard`` can be scored now: every kind's feature file of it, and of every
    shard it reuses rows from (its reuse plans), verifies under ``RunConfig.feature_identity``
    (the check ``feature_stage`` makes before reusing one).

    Every decision to score a shard before the score stage goes through here.
    """
    from virnucpro.pipeline.stages.feature_files import reuse_sources

    paths = setup.paths
    return all(
        verify_done(kind.features(paths, index),
                    setup.config.feature_identity(kind, kind.inputs_sha256(paths, index)))
        for kind in MODEL_KINDS
        for index in sorted({shard.index} | reuse_sources(paths, kind, shard.index))
    )


_classifiers: dict[tuple[str, str], Any] = {}
_classifiers_lock = threading.Lock()


def scoring_classifier(path: str, identity: Any) -> Any:
    """The classifier at ``path`` (with this ``identity``) in float64, loaded once per process.

    Float64 makes each frame's score independent of which frames share its batch (float32
    matmuls round differently per batch shape); see results.probabilities_from_logits.
    """
    key = (path, repr(identity))
    with _classifiers_lock:  # the samples of a many-sample run score on threads of one process
        classifier = _classifiers.get(key)
        if classifier is None:
            from virnucpro.models.classifier import load_classifier

            _classifiers.clear()  # one classifier per run; a process running many runs keeps one
            classifier = _classifiers[key] = load_classifier(Path(path)).double().eval()
    return classifier


def score_shard(job: ScoreJob) -> int:
    """Score one shard (see :class:`ScoreJob`); returns its frame count.

    Raises:
        VirnucproError: a feature file does not match its shard.
    """
    import torch

    from virnucpro.pipeline.stages.feature_files import shard_feature_matrix

    paths = RunPaths(Path(job.root))
    try:
        frame_ids, features = shard_feature_matrix(paths, job.shard)
    except (OSError, ValueError) as exc:
        raise VirnucproError(f"{shard_name(job.shard)}: {exc}; re-run to recompute it") from None
    with torch.inference_mode():
        logits = scoring_classifier(job.classifier_path, job.identity.get("classifier"))(torch.from_numpy(features).double()).numpy()
    rows = results.frame_scores(frame_ids, results.probabilities_from_logits(logits))
    target = paths.shard_scores(job.shard)
    make_dir(paths.scores_dir)
    atomic_write_text(target, "".join(row.line() for row in rows))
    write_done(target, job.identity, frames=len(rows))
    return len(rows)


def score_stage(shards: list[ShardInfo], setup: RunSetup, state: RunState, reused: int,
                began: float | None = None) -> None:
    """Classify every frame of ``shards`` in this process, one shard after another.

    Args:
        reused: shards already scored and verified before this run (for the report).
        began: ``time.monotonic()`` when the stage's work began, when a pool already scored
            shards of this run (its counts are in ``state.stages["score"]``, which this adds to).
    """
    began = time.monotonic() if began is None else began
    report = state.stages.setdefault("score", StageReport(reused_shards=reused))
    for shard in shards:
        count_scored(report, score_shard(score_job(setup, shard)), began)
        logger.debug("score: %s scored in this process", shard_name(shard.index))
    if report.computed_shards:
        logger.info("score: %d frame(s) in %d shard(s)", report.frames, report.computed_shards)


def count_scored(report: StageReport, frames: int, began: float) -> None:
    """Add one scored shard of ``frames`` frames to the score stage's ``report`` (as shards finish,
    so an interrupted run's summary tells what was scored)."""
    report.frames += frames
    report.computed_shards += 1
    report.seconds = time.monotonic() - began
