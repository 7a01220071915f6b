"""``virnucpro train`` / ``evaluate`` on tiny random embedders and synthetic labelled data.

The two classes are made of disjoint codon sets (viral: lysine/glutamate/aspartate codons, host:
leucine/alanine/glycine codons), so every frame's amino-acid composition differs and even the
tiny random embedders separate them.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import TINY_REF, cli_in_process, run_cli

MODELS = TINY_REF / "models"
EMBEDDERS = ["--esm-model", str(MODELS / "esm2_t36_tiny.pt"), "--dnabert-model", str(MODELS / "dnabert_tiny"),
             "--offline", "--no-dashboard", "-c", "90"]


def _write_fasta(path: Path, codons: list[str], n: int, seed: int, prefix: str) -> Path:
    rng = random.Random(seed)
    with open(path, "w") as handle:
        for i in range(n):
            handle.write(f">{prefix}{i}\n{''.join(rng.choice(codons) for _ in range(rng.randint(30, 60)))}\n")
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    pos = _write_fasta(root / "viral.fa", ["AAA", "GAA", "GAT", "AAG"], 14, 1, "v")
    neg = _write_fasta(root / "host.fa", ["CTG", "GCC", "GGC", "CTC"], 14, 2, "h")
    work = root / "features"
    args = ["train", "--positive", str(pos), "--negative", str(neg), "--work-dir", str(work), *EMBEDDERS,
            "--epochs", "40", "--split-by", "chunk"]
    code, _, err = cli_in_process(*args, "-o", str(root / "m1"))
    assert code == 0, err
    return {"root": root, "pos": pos, "neg": neg, "work": work, "args": args, "model": root / "m1"}


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("virnucpro: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_training_reaches_high_held_out_accuracy_and_writes_model_dir(trained):
    model = trained["model"]
    metrics = json.loads((model / "metrics.json").read_text())
    held = metrics["held_out"]
    assert held["accuracy"] >= 0.9 and held["roc_auc"] >= 0.95
    assert held["positives"] > 0 and held["negatives"] > 0
    assert sum(map(sum, held["confusion_matrix"])) == held["n"]
    assert len(metrics["history"]) >= 1
    card = json.loads((model / "model.json").read_text())
    assert card["chunk_length"] == 90 and card["seed"] == 42
    assert card["architecture"]["input_dim"] == 48 + 32 and card["architecture"]["hidden_dim"] == 512
    assert set(card["feature_models"]) == {"dnabert", "esm"} and all(len(m["sha256"]) == 64 for m in card["feature_models"].values())
    assert card["recipe"]["learning_rate"] == 2e-4 and card["recipe"]["momentum"] == 0.9
    assert card["class_balance"]["virus"] > 0 and card["class_balance"]["others"] > 0
    from safetensors.numpy import load_file

    tensors = load_file(str(model / "model.safetensors"))
    assert tensors["hidden_layer.weight"].shape == (512, 80)


def test_second_run_embeds_nothing_and_gives_the_same_bytes(trained):
    args, first = trained["args"], trained["model"]
    code, _, err = cli_in_process(*args, "-o", str(trained["root"] / "m2"))
    assert code == 0, err
    second = trained["root"] / "m2"
    summary = json.loads((second / "train_summary.json").read_text())
    assert summary["embedded_shards"] == 0 and summary["reused_shards"] == 4
    for name in ("model.safetensors", "model.json", "metrics.json"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    # Other hyper-parameters: still nothing embedded, another model.
    code, _, err = cli_in_process(*args, "-o", str(trained["root"] / "m3"), "--lr", "1e-3", "--epochs", "3")
    assert code == 0, err
    assert json.loads((trained["root"] / "m3" / "train_summary.json").read_text())["embedded_shards"] == 0
    assert (trained["root"] / "m3" / "model.safetensors").read_bytes() != (first / "model.safetensors").read_bytes()


def _softmax_virus(model_dir: Path, features: np.ndarray) -> np.ndarray:
    """P(virus) from the saved tensors, computed here with numpy (eval mode: BatchNorm uses running stats)."""
    from safetensors.numpy import load_file

    t = {k: v.astype(np.float64) for k, v in load_file(str(model_dir / "model.safetensors")).items()}
    h = features.astype(np.float64) @ t["hidden_layer.weight"].T + t["hidden_layer.bias"]
    h = (h - t["bn1.running_mean"]) / np.sqrt(t["bn1.running_var"] + 1e-5) * t["bn1.weight"] + t["bn1.bias"]
    logits = np.maximum(h, 0) @ t["output_layer.weight"].T + t["output_layer.bias"]
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True))[:, 1]


def _frames_of(work: Path, stem: str) -> tuple[list[str], np.ndarray]:
    """Frame IDs and joined features of one input's work directory, read with safetensors directly."""
    from safetensors import safe_open

    (run,) = [p for p in work.iterdir() if p.name.startswith(stem + "-")]
    blocks, frame_ids = [], []
    for dna in sorted((run / "work" / "features").glob("*.dnabert.safetensors")):
        parts = []
        for path in (dna, dna.with_name(dna.name.replace(".dnabert.", ".esm."))):
            with safe_open(str(path), "np") as f:
                ids = json.loads(f.metadata()["ids"])
                parts.append(dict(zip(ids, f.get_tensor("embeddings"))))
        frame_ids.extend(ids)
        blocks.append(np.stack([np.concatenate([parts[0][i], parts[1][i]]) for i in ids]))
    return frame_ids, np.concatenate(blocks)


def _auc(labels, scores) -> float:
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    return sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / (len(pos) * len(neg))


def _check(level: dict, labels: list[int], calls: list[bool], scores: list[float]) -> None:
    tp = sum(1 for y, c in zip(labels, calls) if y and c)
    tn = sum(1 for y, c in zip(labels, calls) if not y and not c)
    fp = sum(1 for y, c in zip(labels, calls) if not y and c)
    fn = sum(1 for y, c in zip(labels, calls) if y and not c)
    assert level["confusion_matrix"] == [[tn, fp], [fn, tp]]
    assert level["accuracy"] == pytest.approx((tp + tn) / len(labels))
    if tp + fp:
        assert level["precision"] == pytest.approx(tp / (tp + fp))
    assert level["recall"] == pytest.approx(tp / (tp + fn))
    assert level["roc_auc"] == pytest.approx(_auc(labels, scores), abs=1e-9)


def test_evaluate_metrics_match_an_independent_computation(trained):
    out = trained["root"] / "eval"
    code, stdout, err = cli_in_process("evaluate", "--positive", str(trained["pos"]), "--negative", str(trained["neg"]),
                                       "--work-dir", str(trained["work"]), "--model-path", str(trained["model"]),
                                       "-o", str(out), *EMBEDDERS[:-2])  # -c from the MODEL_DIR
    assert code == 0, err
    assert stdout.splitlines()[0].startswith("level\tn\taccuracy") and len(stdout.splitlines()) == 4
    report = json.loads((out / "evaluation.json").read_text())["metrics"]
    assert (out / "evaluation.tsv").read_text() == stdout
    frame_labels, frame_scores, chunk_rows, seq_rows = [], [], {}, {}
    for stem, label in (("viral", 1), ("host", 0)):
        ids, feats = _frames_of(trained["work"], stem)
        virus = _softmax_virus(trained["model"], feats)
        frame_labels += [label] * len(ids)
        frame_scores += list(virus)
        for fid, s in zip(ids, virus):
            chunk_rows.setdefault((label, fid[:-2]), []).append(s)
    _check(report["frame"], frame_labels, [s > 0.5 for s in frame_scores], frame_scores)
    chunk_labels = [lab for lab, _ in chunk_rows]
    chunk_scores = [(max(v) + min(v)) / 2 for v in chunk_rows.values()]
    _check(report["chunk"], chunk_labels, [max(v) >= 1 - min(v) for v in chunk_rows.values()],
           chunk_scores)
    for (lab, chunk), score in zip(chunk_rows, chunk_scores):
        seq_rows.setdefault((lab, chunk.rsplit("_chunk_", 1)[0]), []).append(score)
    seq_scores = [float(np.mean(v)) for v in seq_rows.values()]
    _check(report["sequence"], [lab for lab, _ in seq_rows], [s >= 0.5 for s in seq_scores], seq_scores)
    assert report["frame"]["n"] == len(frame_labels) and report["sequence"]["n"] == 28


@pytest.mark.slow
def test_saved_model_through_predict_gives_the_training_scores(trained, tmp_path):
    out = tmp_path / "pred"
    result = run_cli("predict", str(trained["pos"]), "-o", str(out), "--model-path", str(trained["model"]), *EMBEDDERS)
    assert result.returncode == 0, result.stderr.decode()
    predicted = {}
    for line in (out / "prediction_results.txt").read_text().splitlines()[1:]:
        fid, _, s1, s2 = line.split("\t")
        predicted[fid] = (s1, s2)
    rows = [line.split("\t") for line in (trained["model"] / "heldout_scores.tsv").read_text().splitlines()[1:]]
    mine = [r for r in rows if r[0] == str(trained["pos"])]
    assert mine
    for _, fid, _, s1, s2 in mine:
        assert predicted[fid] == (s1, s2), fid


def test_predict_refuses_other_chunk_length_and_other_feature_models(trained, tmp_path):
    args = ["predict", str(trained["pos"]), "--model-path", str(trained["model"] / "model.safetensors"),
            "--esm-model", str(MODELS / "esm2_t36_tiny.pt"), "--offline"]
    code, _, err = cli_in_process(*args, "--dnabert-model", str(MODELS / "dnabert_tiny"), "-o", str(tmp_path / "a"), "-c", "120")
    assert code == 4 and "chunk length 90" in _one_line(err)
    other = tmp_path / "dnabert_other"
    shutil.copytree(MODELS / "dnabert_tiny", other)
    config = other / "config.json"
    config.write_text(config.read_text() + "\n")  # same model, other bytes: another identity
    code, _, err = cli_in_process(*args, "--dnabert-model", str(other), "-o", str(tmp_path / "b"), "-c", "90")
    assert code == 4 and "dnabert" in _one_line(err)
    code, _, err = cli_in_process("evaluate", "--positive", str(trained["pos"]), "--negative", str(trained["neg"]),
                                  "--model-path", str(trained["model"]), "-o", str(tmp_path / "e"),
                                  "--esm-model", str(MODELS / "esm2_t36_tiny.pt"), "--dnabert-model", str(other),
                                  "--offline", "-c", "90")
    assert code == 4 and "dnabert" in _one_line(err)
    assert not (tmp_path / "a" / "prediction_results.txt").exists()


@pytest.mark.parametrize("labelled, expected", [
    (["--negative", "NEG"], "no --positive input"),
    (["--positive", "POS"], "no --negative input"),
    (["--positive", "POS", "--negative", "POS"], "given twice"),
    (["--positive", "POS", "--negative", "MISSING"], "MISSING"),
])
def test_bad_labelled_inputs_are_one_line_errors(trained, tmp_path, labelled, expected):
    names = {"POS": str(trained["pos"]), "NEG": str(trained["neg"]), "MISSING": str(tmp_path / "nothing.fa")}
    args = [names.get(a, a) for a in labelled]
    code, _, err = cli_in_process("train", *args, "-o", str(tmp_path / "m"), *EMBEDDERS)
    assert code == 3
    assert names.get(expected, expected) in _one_line(err)


def test_a_class_without_kept_frames_is_a_one_line_error(trained, tmp_path):
    stops = tmp_path / "stops.fa"
    stops.write_text(">s1\n" + "N" * 120 + "\n")  # codons with N are dropped: no frame has a protein
    code, _, err = cli_in_process("train", "--positive", str(trained["pos"]), "--negative", str(stops),
                                  "--work-dir", str(trained["work"]), "-o", str(tmp_path / "m"), *EMBEDDERS)
    assert code == 3 and "others inputs give no kept frame" in _one_line(err)


def _write_genbank(path: Path, codons: list[str], n: int, seed: int, prefix: str) -> Path:
    """Records of one annotated CDS (start, codons from ``codons``, stop) followed by random bases."""
    from Bio.Seq import Seq
    from Bio.SeqFeature import FeatureLocation, SeqFeature
    from Bio.SeqIO import write
    from Bio.SeqRecord import SeqRecord

    rng, records = random.Random(seed), []
    for i in range(n):
        cds = "ATG" + "".join(rng.choice(codons) for _ in range(rng.randint(30, 45))) + "TAA"
        record = SeqRecord(Seq(cds + "".join(rng.choice("ACGT") for _ in range(30))), id=f"{prefix}{i}",
                           name=f"{prefix}{i}", annotations={"molecule_type": "DNA"})
        record.features.append(SeqFeature(FeatureLocation(0, len(cds)), type="CDS"))
        records.append(record)
    write(records, path, "genbank")
    return path


@pytest.mark.slow
def test_genbank_cds_training_keeps_only_annotated_frames(tmp_path):
    pos = _write_genbank(tmp_path / "viral.gb", ["AAA", "GAA", "GAT", "AAG"], 6, 1, "v")
    neg = _write_genbank(tmp_path / "host.gb", ["CTG", "GCC", "GGC", "CTC"], 6, 2, "h")
    code, _, err = cli_in_process("train", "--positive", str(pos), "--negative", str(neg), "--genbank-cds",
                                  "-o", str(tmp_path / "m"), *EMBEDDERS, "--epochs", "3")
    assert code == 0, err
    summary = json.loads((tmp_path / "m" / "train_summary.json").read_text())
    for item in summary["inputs"]:
        assert 0 < item["frames"] < item["frames_before_filter"]
    assert json.loads((tmp_path / "m" / "model.json").read_text())["frame_selection"] == "genbank-cds"
    code, _, err = cli_in_process("train", "--positive", str(trained_fasta(tmp_path)), "--negative", str(neg),
                                  "--genbank-cds", "-o", str(tmp_path / "bad"), *EMBEDDERS)
    assert code == 3 and "no GenBank records" in _one_line(err)


def trained_fasta(tmp_path: Path) -> Path:
    return _write_fasta(tmp_path / "plain.fa", ["AAA"], 2, 0, "p")
