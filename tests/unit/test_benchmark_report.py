"""Strict JSON and the report's rendering."""

from __future__ import annotations

import io
import json
import math

import numpy as np

from virnucpro.benchmark.report import render_precision_check, strict_json, write_json


def test_strict_json_replaces_nan_and_numpy_scalars(tmp_path):
    data = {"a": float("nan"), "b": [np.float32(1.5), np.int64(3), math.inf], "c": {"d": "x", 1: None}}
    clean = strict_json(data)
    assert clean == {"a": None, "b": [1.5, 3, None], "c": {"d": "x", "1": None}}
    path = tmp_path / "r.json"
    write_json(data, path)
    assert json.loads(path.read_text()) == clean


def test_render_precision_check_lists_each_precision():
    result = {
        "frames": 3, "input": "in.fa", "chunk_length": 500, "device": {"type": "cpu"}, "notice": "",
        "results": [{
            "precision": "bf16",
            "esm2": {"cosine_min": 0.9991, "cosine_median": 0.9999},
            "dnabert_s": {"cosine_min": 0.99995, "cosine_median": 0.99999},
            "labels": {"agreement": 2 / 3, "flips": 1, "virus_to_others": 1, "others_to_virus": 0},
            "max_abs_virus_score_change": 0.25,
            "worst_frames": [{"id": "c_chunk_1F1", "cosine": 0.9991}],
        }],
    }
    out = io.StringIO()
    render_precision_check(result, out)
    text = out.getvalue()
    assert "bf16" in text and "0.999100" in text and "66.7%" in text and "c_chunk_1F1" in text
