"""SDPA backends checked against FP64 at the engines' shapes, and the pinned set the engines use."""

from __future__ import annotations

import pytest
import torch

from virnucpro.models.attention_check import (
    BACKENDS,
    DEFAULT_ALLOWED,
    ENGINE_SHAPES,
    ENV_OVERRIDE,
    AttentionShape,
    allowed_backend_names,
    attention_context,
    check_attention_backends,
    passing_backends,
    pin_backends,
)

CPU = torch.device("cpu")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cpu_kernels_match_fp64_at_engine_shapes(dtype: torch.dtype) -> None:
    rows = check_attention_backends(CPU, dtype)
    assert len(rows) == len(BACKENDS) * len(ENGINE_SHAPES)
    assert {r["shape"] for r in rows} == {"esm2_unmasked", "esm2_padded", "dnabert_alibi_padded"}
    by = {(r["backend"], r["shape"]): r for r in rows}
    for shape in ENGINE_SHAPES:
        math_row = by[("math", shape.name)]
        assert math_row["verdict"] == "pass", math_row
        assert 0 <= math_row["max_abs_error"] <= math_row["tolerance"]  # type: ignore[operator]
        # The GPU-only kernels say so instead of failing or passing.
        for name in ("efficient", "cudnn"):
            assert by[(name, shape.name)]["verdict"] == "unavailable"
            assert by[(name, shape.name)]["max_abs_error"] is None
    assert set(rows[0]) == {"backend", "shape", "dtype", "device", "max_abs_error", "tolerance", "verdict",
                            "detail"}


def test_a_kernel_outside_tolerance_fails_the_check() -> None:
    """BF16 outputs judged at FP32's tolerance: the check must say fail, and the backend is not passed."""
    from virnucpro.models import attention_check

    shape = AttentionShape("esm2_padded", 2, 4, 24, 16, "key_padding", scale=1.0)
    original = attention_check.TOLERANCE[torch.bfloat16]
    attention_check.TOLERANCE[torch.bfloat16] = 1e-7
    try:
        rows = check_attention_backends(CPU, torch.bfloat16, shapes=(shape,), backends=("math",))
    finally:
        attention_check.TOLERANCE[torch.bfloat16] = original
    assert rows[0]["verdict"] == "fail" and "max abs error" in str(rows[0]["detail"])
    assert passing_backends(rows) == ()
    # Unavailable on some shapes (flash takes no mask) is not a failure; failing anywhere is.
    mixed = [{"backend": "flash", "verdict": "pass"}, {"backend": "flash", "verdict": "unavailable"},
             {"backend": "cudnn", "verdict": "pass"}, {"backend": "cudnn", "verdict": "fail"},
             {"backend": "efficient", "verdict": "unavailable"}]
    assert passing_backends(mixed) == ("flash",)  # type: ignore[arg-type]


def test_pinning_keeps_only_backends_that_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    assert allowed_backend_names() == DEFAULT_ALLOWED and "cudnn" not in DEFAULT_ALLOWED
    # Verified on the CPU: the memory-efficient kernel does not exist here, so it is dropped.
    assert pin_backends(CPU, torch.float32, verify=True) == ("flash", "math")
    monkeypatch.setenv(ENV_OVERRIDE, "math")
    assert pin_backends(CPU, torch.float32) == ("math",)
    q = torch.randn(1, 2, 8, 16)
    with attention_context(CPU, torch.float32):
        torch.nn.functional.scaled_dot_product_attention(q, q, q)
    monkeypatch.setenv(ENV_OVERRIDE, "math,warp")
    with pytest.raises(ValueError, match="VIRNUCPRO_SDPA_BACKENDS"):
        allowed_backend_names()
    monkeypatch.delenv(ENV_OVERRIDE)
    pin_backends(CPU, torch.float32)  # leave the default pinned for the other tests
