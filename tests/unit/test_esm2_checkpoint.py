"""Safe ESM-2 checkpoint loading: allow-list, refusal without side effects, clear one-line errors."""

from __future__ import annotations

import argparse
import collections
import os

import pytest
import torch

from tests.unit.esm2_helpers import save_random_esm2
from virnucpro.errors import ModelNotAvailableError, UnsafeCheckpointError
from virnucpro.models.esm2 import load_esm2
from virnucpro.models.esm2_checkpoint import load_esm2_checkpoint


class _Exploit:
    """Pickles as a call to ``os.system`` that would create a marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _cfg(**kw):
    base = dict(encoder_layers=1, encoder_embed_dim=8, encoder_attention_heads=2, token_dropout=True)
    base.update(kw)
    return {"model": argparse.Namespace(**base)}


def test_fixture_checkpoint_hyperparameters(tiny_ref):
    ckpt = load_esm2_checkpoint(tiny_ref / "models" / "esm2_t36_tiny.pt")
    assert (ckpt.num_layers, ckpt.embed_dim, ckpt.attention_heads, ckpt.token_dropout) == (36, 32, 4, True)
    assert "layers.35.fc2.weight" in ckpt.state_dict
    assert not any(k.startswith("encoder.") for k in ckpt.state_dict)


def test_hyperparameters_come_from_cfg_not_filename(tmp_path):
    path = save_random_esm2(tmp_path / "esm2_t36_3B_UR50D.pt", num_layers=2, embed_dim=16, heads=2)
    embedder = load_esm2(path, torch.device("cpu"), torch.float32)
    assert (embedder.num_layers, embedder.dim) == (2, 16)


def test_legacy_pickle_format_loads(tmp_path):
    path = save_random_esm2(tmp_path / "legacy.pt", num_layers=1, embed_dim=16, heads=2,
                            _use_new_zipfile_serialization=False)
    assert load_esm2_checkpoint(path).num_layers == 1


def test_os_system_reduce_refused_and_not_run(tmp_path):
    marker = tmp_path / "executed"
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "cfg": _cfg(), "x": _Exploit(marker)}, path)
    with pytest.raises(UnsafeCheckpointError) as info:
        load_esm2_checkpoint(path)
    message = str(info.value)
    assert "system" in message and str(path) in message and "\n" not in message
    assert not marker.exists()


def test_other_global_refused_with_type_named(tmp_path):
    path = tmp_path / "deque.pt"
    torch.save({"model": {}, "cfg": _cfg(), "extra": collections.deque([1, 2])}, path)
    with pytest.raises(UnsafeCheckpointError, match=r"collections\.deque"):
        load_esm2_checkpoint(path)


def test_esm1_style_checkpoint_rejected(tmp_path):
    path = tmp_path / "esm1.pt"
    torch.save({"model": {}, "args": argparse.Namespace(arch="roberta_large")}, path)
    with pytest.raises(ModelNotAvailableError, match="ESM-1"):
        load_esm2_checkpoint(path)


@pytest.mark.parametrize("cut", [0.5, 0.05])
def test_truncated_file(tmp_path, tiny_ref, cut):
    data = (tiny_ref / "models" / "esm2_t36_tiny.pt").read_bytes()
    path = tmp_path / "esm2_cut.pt"
    path.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(ModelNotAvailableError) as info:
        load_esm2_checkpoint(path)
    assert "\n" not in str(info.value)


def test_garbage_and_missing_file(tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"this is not a checkpoint at all" * 10)
    with pytest.raises(ModelNotAvailableError):
        load_esm2_checkpoint(garbage)
    with pytest.raises(ModelNotAvailableError, match="not found"):
        load_esm2_checkpoint(tmp_path / "absent.pt")


def test_missing_weight_and_bad_cfg(tmp_path):
    path = save_random_esm2(tmp_path / "esm2_rand.pt", num_layers=1, embed_dim=16, heads=2)
    with torch.serialization.safe_globals([argparse.Namespace]):
        data = torch.load(path, weights_only=True)
    del data["model"]["encoder.layers.0.fc1.weight"]
    torch.save(data, path)
    with pytest.raises(ModelNotAvailableError, match="fc1.weight"):
        load_esm2_checkpoint(path)
    bad = tmp_path / "bad_cfg.pt"
    torch.save({"model": {}, "cfg": _cfg(encoder_embed_dim=10, encoder_attention_heads=3)}, bad)
    with pytest.raises(ModelNotAvailableError, match="invalid ESM-2 cfg"):
        load_esm2_checkpoint(bad)
