"""Stage 4 of ``predict``: join both feature files of each shard BY FRAME ID and classify every frame.

Writes ``work/scores/shard-NNNNN.tsv`` (+ ``.done`` under ``RunConfig.score_identity``).
"""

from __future__ import annotations

import logging
import time

from virnucpro.errors import VirnucproError
from virnucpro.pipeline import results
from virnucpro.pipeline.checkpoint import atomic_write_text, make_dir, verify_done, write_done
from virnucpro.pipeline.model_kinds import MODEL_KINDS
from virnucpro.pipeline.outputs import shard_name
from virnucpro.pipeline.run_config import RunSetup
from virnucpro.pipeline.summary import RunState, StageReport
from virnucpro.pipeline.work_files import ShardInfo

logger = logging.getLogger(__name__)


def score_identity(setup: RunSetup, shard: ShardInfo) -> dict[str, object]:
    """The identity one shard's score file is written and checked under."""
    sources = {kind.name: kind.source_sha256(setup.paths, shard.index) for kind in MODEL_KINDS}
    return setup.config.score_identity(sources)


def shards_to_score(setup: RunSetup, shards: list[ShardInfo]) -> list[ShardInfo]:
    """The shards without a verified score file."""
    return [s for s in shards if not verify_done(setup.paths.shard_scores(s.index), score_identity(setup, s))]


def score_stage(shards: list[ShardInfo], setup: RunSetup, state: RunState, reused: int) -> None:
    """Classify every frame of ``shards`` (``reused``: shards already scored, for the report)."""
    from virnucpro.models.classifier import load_classifier
    from virnucpro.pipeline.features import join_by_id, read_features, read_shard_sequences

    paths = setup.paths
    began = time.monotonic()
    report = state.stages["score"] = StageReport(reused_shards=reused)
    if not shards:
        return
    import torch

    # Float64 makes each frame's score independent of which frames share its batch (float32
    # matmuls round differently per batch shape); see results.probabilities_from_logits for ties.
    classifier = load_classifier(setup.models.classifier_path).double().eval()
    make_dir(paths.scores_dir)
    for shard in shards:
        frame_ids, _ = read_shard_sequences(paths.shard_dna(shard.index))
        parts = [read_features(kind.features(paths, shard.index)) for kind in MODEL_KINDS]
        try:
            features = join_by_id(frame_ids, *parts)
        except ValueError as exc:
            raise VirnucproError(f"{shard_name(shard.index)}: {exc}; re-run to recompute it") from None
        with torch.inference_mode():
            logits = classifier(torch.from_numpy(features).double()).numpy()
        probabilities = results.probabilities_from_logits(logits)
        rows = results.frame_scores(frame_ids, probabilities)
        target = paths.shard_scores(shard.index)
        atomic_write_text(target, "".join(row.line() for row in rows))
        write_done(target, score_identity(setup, shard), frames=len(rows))
        report.frames += len(rows)
        report.computed_shards += 1
    report.seconds = time.monotonic() - began
    logger.info("score: %d frame(s) in %d shard(s)", report.frames, report.computed_shards)
