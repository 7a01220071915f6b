"""Random-weight engines (same weights for ours and fair-esm), probes, targets and MFU rules."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from virnucpro.benchmark import engines, run, synthetic
from virnucpro.benchmark.drift import cosine_rows
from virnucpro.benchmark.flops import TransformerShape

TINY_ESM = TransformerShape("esm2", layers=2, dim=64, heads=4, ffn=256, ffn_matrices=2, vocab=33)
TINY_DNA = TransformerShape("dnabert_s", layers=1, dim=24, heads=12, ffn=48, ffn_matrices=3, vocab=4096)
CPU = torch.device("cpu")
PROTEINS = ["MKTAYIAKQR", "ACDEFGHIKLMNPQRSTVWY" * 3, "MW"]


def test_random_esm2_checkpoint_has_fair_esm_layout_and_is_deterministic():
    a = engines.random_esm2_checkpoint(TINY_ESM, CPU, seed=1)
    b = engines.random_esm2_checkpoint(TINY_ESM, CPU, seed=1)
    assert (a.num_layers, a.embed_dim, a.attention_heads) == (2, 64, 4)
    assert a.state_dict["lm_head.weight"] is a.state_dict["embed_tokens.weight"]
    assert all(torch.equal(a.state_dict[k], b.state_dict[k]) for k in a.state_dict)
    assert float(a.state_dict["embed_tokens.weight"][1].abs().sum()) == 0.0  # padding row


def test_ours_and_published_esm2_share_weights():
    from virnucpro.models.esm2_reference import published_embed

    ours = engines.build_esm2_ours(TINY_ESM, CPU, torch.float32, seed=3)
    model, alphabet = engines.build_esm2_published(TINY_ESM, CPU, seed=3)
    cos = cosine_rows(ours.embed(PROTEINS), published_embed(model, alphabet, PROTEINS))
    assert cos.min() > 1 - 1e-6


def test_dnabert_same_weights_for_every_dtype():
    tokenizer = synthetic.train_dna_tokenizer(corpus_bp=50_000)
    seqs = ["ACGTACGTTTGACCA" * 10, "GGGCCCAAATTT" * 4]
    fp32 = engines.build_dnabert(TINY_DNA, tokenizer, CPU, torch.float32, seed=5).embed(seqs)
    again = engines.build_dnabert(TINY_DNA, tokenizer, CPU, torch.float32, seed=5).embed(seqs, batch_tokens=1)
    bf16 = engines.build_dnabert(TINY_DNA, tokenizer, CPU, torch.bfloat16, seed=5).embed(seqs)
    assert cosine_rows(fp32, again).min() > 1 - 1e-6  # one sequence per forward == batched
    assert cosine_rows(fp32, bf16).min() > 0.99


def test_timed_embed_and_peak_memory():
    timed = engines.timed_embed(lambda s: torch.ones(len(s), 3), ["a", "b"], ["a"], CPU, repeats=2)
    assert timed.seconds >= 0 and timed.embeddings.shape == (2, 3)
    assert timed.peak_memory_bytes > 0 and timed.peak_memory_kind.startswith("peak_rss")


def test_timed_embed_warms_up_on_the_whole_set_and_keeps_the_best_of_three():
    calls: list[list[str]] = []

    def embed(seqs):
        calls.append(list(seqs))
        return torch.ones(len(seqs), 3)

    timed = engines.timed_embed(embed, ["a", "b", "c"], None, CPU)
    assert calls == [["a", "b", "c"]] * 4  # one untimed warm-up pass on the full set, then 3 timed ones
    assert len(timed.repeat_seconds) == 3 and timed.seconds == min(timed.repeat_seconds)
    assert timed.warmup_seconds >= 0


def test_pretokenized_dna_serves_precomputed_ids_and_falls_back():
    tokenizer = synthetic.train_dna_tokenizer(vocab_size=64, corpus_bp=5000)
    seqs = ["ACGTACGTTT", "GGGCCCAAAT"]
    wrapped = engines.PretokenizedDna(tokenizer, seqs, tokenizer.encode(seqs))
    assert wrapped.encode(seqs[::-1]) == tokenizer.encode(seqs[::-1])
    assert wrapped.encode(["TTTTACGA"]) == tokenizer.encode(["TTTTACGA"])
    assert wrapped.pad_id == tokenizer.pad_id and wrapped.vocab_size == tokenizer.vocab_size


def test_pretokenized_esm_passes_compute_the_engine_result_from_token_matrices_alone():
    """The timed ESM-2 pass receives the engine's own batches as token matrices: with the residue codes
    gone it still gives exactly ``embed``'s result, and tokenises nothing."""
    embedder = engines.build_esm2_ours(TINY_ESM, CPU, torch.float32, seed=3)
    seqs = PROTEINS * 3
    want = embedder.embed(seqs, batch_tokens=80)
    pre = engines.pretokenize_esm(embedder, seqs, batch_tokens=80)
    assert len(pre) == len(seqs) and len(pre.batches) > 1 and pre.budget == 80
    pre.codes = np.empty(0, dtype=np.int64)  # any tokenising in the pass would now fail
    for _ in range(2):
        assert torch.equal(engines.embed_pretokenized_esm(embedder, pre), want)
    assert pre.tokenized_late == 0


def test_pretokenized_esm_tokenises_an_unplanned_batch_and_counts_it():
    embedder = engines.build_esm2_ours(TINY_ESM, CPU, torch.float32, seed=3)
    pre = engines.pretokenize_esm(embedder, PROTEINS, batch_tokens=64)
    pre.batches.pop(next(iter(pre.batches)))
    assert torch.equal(engines.embed_pretokenized_esm(embedder, pre), embedder.embed(PROTEINS, batch_tokens=64))
    assert pre.tokenized_late == 1


def test_full_size_times_at_least_20k_dnabert_frames():
    full = run.BenchmarkOptions(chunk_lengths=(300, 500))
    assert run.dnabert_frames_per_length(full, "full", 1000) * 2 >= 20_000
    assert run.dnabert_frames_per_length(run.BenchmarkOptions(chunk_lengths=(500,)), "full", 1000) >= 20_000
    assert run.dnabert_frames_per_length(full, "small", 24) == 24
    assert run.dnabert_frames_per_length(run.BenchmarkOptions(frames=3), "full", 3) == 3
    assert run.dnabert_frames_per_length(run.BenchmarkOptions(dnabert_frames=2), "full", 5) == 5


def test_matmul_peak_is_positive():
    peak = engines.measure_matmul_peak(CPU, torch.float32, size=64, min_seconds=0.01)
    assert peak.dtype == "fp32" and peak.iterations >= 3 and peak.tflops > 0


def test_mfu_reference_is_bf16_on_cuda_and_own_dtype_on_cpu():
    peaks = {"fp32": engines.MatmulPeak("fp32", 8, 1, 1.0), "bf16": engines.MatmulPeak("bf16", 8, 1, 1.0)}
    assert run.mfu_reference("cuda", "fp32", peaks)[0] == "bf16"
    assert run.mfu_reference("cpu", "fp32", peaks)[0] == "fp32"
    assert run.mfu_reference("cpu", "fp16", peaks) == ("fp16", None)


def test_datasheet_peaks_by_device_name():
    from virnucpro.benchmark.peaks import datasheet_peak, device_row_name

    expected = {"NVIDIA H100 80GB HBM3": 989.4, "NVIDIA H100 PCIe": 756.0, "NVIDIA H100 NVL": 835.5,
                "NVIDIA H200": 989.4, "NVIDIA H200 NVL": 835.5, "NVIDIA A100-SXM4-80GB": 312.0,
                "NVIDIA A100-PCIE-40GB": 312.0, "NVIDIA L40S": 362.05, "NVIDIA L40": 181.05, "NVIDIA L4": 121.0,
                "NVIDIA GeForce RTX 4090": 165.2, "NVIDIA RTX 6000 Ada Generation": 364.2, "NVIDIA A10": 125.0}
    for name, tflops in expected.items():
        peak = datasheet_peak(name)
        assert peak is not None and peak.tflops == tflops, name
    for name in ("Tesla V100-SXM2-16GB", "NVIDIA A10G", "AMD EPYC 7763", "", None):
        assert datasheet_peak(name) is None, name
    assert device_row_name("NVIDIA H100 80GB HBM3") == "H100 SXM" and device_row_name("NVIDIA H200") == "H200 SXM"
    assert device_row_name("Tesla T4") == "Tesla T4"


def test_option_parsing():
    assert run.parse_precisions("auto") == ()
    assert run.parse_precisions("bf16, fp32,bf16") == ("bf16", "fp32")
    with pytest.raises(ValueError):
        run.parse_precisions("int8")
    assert run.parse_chunk_lengths("300,500") == (300, 500)
    with pytest.raises(ValueError):
        run.parse_chunk_lengths("300,x")
    assert run.resolve_run_precisions(("bf16",), CPU) == ("fp32", "bf16")
    assert run.resolve_run_precisions((), CPU) == ("fp32", "bf16")
    assert run.primary_precision(("fp32", "fp16")) == "fp16"
    assert run.primary_precision(("fp32",)) == "fp32"


def _fake_result(device_type: str, name: str, size: str, mfu_esm: float, cos: float) -> dict:
    return {
        "device": {"type": device_type, "name": name},
        "size": size,
        "primary_precision": "bf16",
        "engines": [
            {"model": "esm2", "implementation": "ours", "precision": "bf16", "mfu_datasheet": mfu_esm,
             "mfu": 0.99},  # the measured-peak MFU: not what the targets judge
            {"model": "dnabert_s", "implementation": "ours", "precision": "bf16", "mfu_datasheet": 0.40, "mfu": 0.1},
        ],
        "speedup": {"pipeline": {"factor": 12.0}},
        "drift": [{"precision": "bf16", "esm2": {"cosine_min": cos}, "dnabert_s": {"cosine_min": 0.9999}}],
    }


def test_targets_pass_fail_and_not_measured():
    fake = _fake_result("cuda", "NVIDIA H100 80GB HBM3", "full", 0.5, 0.9995)
    h100 = {t["name"]: t for t in run.evaluate_targets(fake)}
    assert h100["esm2_mfu"]["status"] == "FAIL" and h100["dnabert_s_mfu"]["status"] == "PASS"
    assert h100["pipeline_speedup"]["status"] == "PASS" and h100["bf16_cosine_min"]["status"] == "PASS"
    assert h100["bf16_cosine_min"]["value"] == pytest.approx(0.9995)
    cpu = run.evaluate_targets(_fake_result("cpu", "x", "small", 0.9, 1.0))
    assert {t["status"] for t in cpu} == {"NOT MEASURED"} and {t["value"] for t in cpu} == {None}
    assert all("no GPU" in t["note"] for t in cpu)
    fake = _fake_result("cuda", "NVIDIA A100", "full", 0.6, 1.0)
    other = {t["name"]: t for t in run.evaluate_targets(fake)}
    assert other["esm2_mfu"]["status"] == "PASS" and "H100" in other["esm2_mfu"]["note"]


def test_cpu_stages_measure_every_stage_on_one_thread():
    from virnucpro.benchmark import cpu_side

    threads = torch.get_num_threads()
    stages = cpu_side.measure_cpu_stages(20_000, 500, synthetic.train_dna_tokenizer(corpus_bp=50_000))
    assert torch.get_num_threads() == threads  # restored
    names = ["chunk_translate", "dna_tokenize", "protein_tokenize", "join_classify_write"]
    assert [s.name for s in stages] == names
    assert len({s.frames for s in stages}) == 1 and stages[0].frames > 0
    per_core = cpu_side.cpu_frames_per_s(stages)
    assert 0 < per_core <= min(s.frames_per_s for s in stages)
    assert np.isclose(1 / per_core, sum(1 / s.frames_per_s for s in stages))
