"""The run's worker (``pipeline/workers.py``): both demo models loaded in one state, a task dispatched
on its payload's model, the warm-up call site, and DNABERT-S tokens made on the prefetch thread giving
the very embeddings of tokenising inside ``embed``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from virnucpro.models.demo import ensure_demo_models
from virnucpro.pipeline.model_kinds import DNABERT_S, ESM2, EmbedInitArgs, EmbedPayload
from virnucpro.pipeline.parallel import PrefetchedTokens
from virnucpro.pipeline.stages.feature_files import read_features
from virnucpro.pipeline.workers import (
    embed_run_shard,
    init_run_worker,
    prefetch_run_shard,
    run_init_args,
    warm_up,
)
from virnucpro.pipeline.workqueue.manager import DeferredResult, Task

DNA = ["ACGTACGTTGCA" * 8, "TTGACCA" * 11, "ACGTACGTTGCA" * 8, "GGGCCCAATT" * 9]
PROTEIN = ["MKVLAAGIVG", "MSTNPKPQRK", "MKVLAAGIVG", "MAHHHHHHLE"]


@pytest.fixture(scope="module")
def state(tmp_path_factory):
    demo = ensure_demo_models(tmp_path_factory.mktemp("cache"))
    args = {DNABERT_S.name: EmbedInitArgs(str(demo.dnabert_dir), "fp32", 64, "off"),
            ESM2.name: EmbedInitArgs(str(demo.esm_path), "fp32", 64, "off")}
    return init_run_worker("cpu", run_init_args(args))


def _shard(directory: Path, name: str, seqs: list[str]) -> Path:
    path = directory / name
    path.write_text("".join(f">f{i}\n{s}\n" for i, s in enumerate(seqs)))
    return path


def test_one_state_holds_both_models_and_reports_their_load_and_warm_up(state) -> None:
    assert set(state.kinds) == {"dnabert", "esm"}
    info = state.worker_info
    assert set(info["load_seconds"]) == set(info["warm_up_seconds"]) == set(info["compiled"]) == {"dnabert", "esm"}
    assert all(seconds >= 0 for seconds in info["load_seconds"].values())
    assert isinstance(state.kinds["dnabert"].embedder.tokenizer, PrefetchedTokens)


def test_a_task_runs_on_its_payloads_model_and_names_it(state, tmp_path: Path) -> None:
    for kind, seqs in ((DNABERT_S, DNA), (ESM2, PROTEIN)):
        source = _shard(tmp_path, f"s.{kind.name}.fa", seqs)
        target = tmp_path / f"s.{kind.name}.safetensors"
        payload = EmbedPayload(str(source), str(target), {"model": kind.name}, None, model=kind.name)
        task = Task(f"shard-00001:{kind.name}", len(seqs), payload)  # type: ignore[arg-type]
        prepared = prefetch_run_shard(state, task)
        done: list[int] = []
        result = embed_run_shard(state, task, done.append, prepared)
        assert isinstance(result, DeferredResult)
        values = result.finish()
        assert values["model"] == kind.name and values["busy_seconds"] >= 0 and values["frames"] == len(seqs)
        assert sum(done) == len(seqs)
        features = read_features(target)
        assert list(features.ids) == [f"f{i}" for i in range(len(seqs))]
        assert features.embeddings.shape == (len(seqs), state.kinds[kind.name].embedder.dim)


def test_tokens_made_ahead_give_the_same_embeddings_bit_for_bit(state) -> None:
    embedder = state.kinds["dnabert"].embedder
    wrapper = embedder.tokenizer
    assert isinstance(wrapper, PrefetchedTokens)
    inline = embedder.embed(DNA, batch_tokens=64)  # nothing prepared: tokenised inside embed
    wrapper.prepare(DNA[:2])  # part prepared ahead, the rest tokenised inside
    mixed = embedder.embed(DNA, batch_tokens=64)
    wrapper.prepare(DNA)
    ahead = embedder.embed(DNA, batch_tokens=64)
    assert torch.equal(inline, mixed) and torch.equal(inline, ahead)
    assert wrapper._ids == {}  # prepared ids are used once, then forgotten


class _Warms:
    """An embedder with issue 27's ``warm_up(batch_tokens) -> dict``: the call site must pass the budget."""

    def __init__(self) -> None:
        self.asked: list[int | None] = []

    def warm_up(self, batch_tokens: int | None) -> dict:
        self.asked.append(batch_tokens)
        return {"seconds": 1.5, "compiled": True, "compile_seconds": 1.25}


def test_warm_up_is_called_when_the_embedder_has_it_and_recorded_as_not_run_otherwise() -> None:
    embedder = _Warms()
    assert warm_up(embedder, 4096) == {"seconds": 1.5, "compiled": True, "compile_seconds": 1.25}
    assert embedder.asked == [4096]
    assert warm_up(object(), 4096) == {"seconds": 0.0, "compiled": False, "compile_seconds": 0.0}
    assert np.isclose(warm_up(None, None)["seconds"], 0.0)


def test_the_queue_hands_out_the_costliest_task_first_and_a_retry_keeps_its_place() -> None:
    from virnucpro.pipeline.workqueue.scheduler import QueueSettings, Scheduler

    scheduler = Scheduler(["cpu"], QueueSettings("m:init", "m:process"), None)
    # Same frames, different models: ESM-2 (30x the cost per frame) goes before DNABERT-S.
    scheduler.add([Task("s1:dnabert", 100, cost=100.0), Task("s1:esm", 100, cost=3000.0),
                   Task("s2:dnabert", 100, cost=100.0), Task("s3:dnabert", 40)])
    first = scheduler.pop()
    assert first.key == "s1:esm"
    second = scheduler.pop()
    assert second.key == "s1:dnabert"
    scheduler.push(second)  # its worker died: queued again, ahead of s2 (queued after it)
    assert [scheduler.pop().key for _ in range(3)] == ["s1:dnabert", "s2:dnabert", "s3:dnabert"]
