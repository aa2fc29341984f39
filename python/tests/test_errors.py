"""Each exception, in the categories of the command line's exit codes."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

import npuopt
from conftest import REAL


def two_adds(c: float) -> onnx.ModelProto:
    """y = x + c: two of these with different c compute different things."""
    g = helper.make_graph(
        [helper.make_node("Add", ["x", "c"], ["y"], name="add")],
        "add",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor("c", TensorProto.FLOAT, [1], [c])],
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def test_garbage_and_truncated_models_are_invalid(mobileone: Path) -> None:
    with pytest.raises(npuopt.InvalidModelError):
        npuopt.optimize(b"\x08\x07not a model at all")
    data = mobileone.read_bytes()
    with pytest.raises(npuopt.InvalidModelError):
        npuopt.optimize(data[: len(data) // 2])
    with pytest.raises(npuopt.InvalidModelError, match="cannot read"):
        npuopt.optimize("/nonexistent/model.onnx")
    with pytest.raises(npuopt.InvalidModelError):
        npuopt.inspect(b"")


def test_a_node_reading_an_undefined_value_is_named() -> None:
    m = two_adds(1.0)
    m.graph.node[0].input[1] = "nowhere"
    with pytest.raises(npuopt.InvalidModelError, match="nowhere"):
        npuopt.optimize(m)


def test_bad_names_and_values_are_usage_errors(repvgg: Path, tmp_path: Path) -> None:
    with pytest.raises(npuopt.UsageError, match="no-such-pass"):
        npuopt.optimize(repvgg, passes=["no-such-pass"])
    with pytest.raises(npuopt.UsageError, match="intent"):
        npuopt.optimize(repvgg, intent="fastest")
    with pytest.raises(npuopt.UsageError, match="needs --target"):
        npuopt.optimize(repvgg, intent="capacity")
    with pytest.raises(npuopt.UsageError, match="nonexistent-npu"):
        npuopt.optimize(repvgg, target="nonexistent-npu")
    with pytest.raises(npuopt.UsageError, match="samples"):
        npuopt.optimize(repvgg, samples=0)
    with pytest.raises(npuopt.UsageError):
        npuopt.optimize(repvgg, verify=False, verify_each=True)
    with pytest.raises(npuopt.UsageError, match="--force"):
        npuopt.optimize_file(repvgg, repvgg)
    # A UsageError is a ValueError, as Python's own bad arguments are.
    with pytest.raises(ValueError):
        npuopt.inspect(repvgg, target="nonexistent-npu")
    with pytest.raises(TypeError):
        npuopt.optimize(42)  # type: ignore[arg-type]


def test_a_mismatch_raises_verification_error_with_the_figures(tmp_path: Path) -> None:
    with pytest.raises(npuopt.VerificationError) as e:
        npuopt.verify(two_adds(1.0), two_adds(1.5))
    report = e.value.report
    assert report["passed"] is False
    (out,) = e.value.outputs
    assert out["name"] == "y" and out["passed"] is False
    assert out["max_abs_err"] == pytest.approx(0.5)
    assert "max abs err" in str(e.value)
    ok = npuopt.verify(two_adds(1.0), two_adds(1.0), samples=3)
    assert ok["passed"] and ok["samples"] == 3


def test_an_optimization_that_fails_verification_writes_nothing(repvgg: Path, tmp_path: Path) -> None:
    # Zero tolerance: BN folding reassociates float arithmetic, so the exact
    # comparison fails — the way a broken rewrite would.
    dst = tmp_path / "out.onnx"
    with pytest.raises(npuopt.VerificationError) as e:
        npuopt.optimize_file(repvgg, dst, rtol=0.0, atol=0.0)
    assert not dst.exists()
    assert e.value.report["passed"] is False
    assert any(o["max_abs_err"] > 0 for o in e.value.outputs)

    with pytest.raises(npuopt.VerificationError) as e:
        npuopt.optimize(repvgg, rtol=0.0, atol=0.0, verify_each=True)
    assert e.value.failed_pass is not None
    assert e.value.first_bad_rewrite is not None
    assert e.value.first_bad_rewrite["pass"] == e.value.failed_pass


def test_a_panic_is_an_internal_error_not_a_crash() -> None:
    from npuopt import _npuopt

    with pytest.raises(npuopt.InternalError, match="panicked"):
        _npuopt._panic_for_tests()
    # The interpreter and the package still work.
    assert npuopt.passes()


def test_errors_share_a_base_class() -> None:
    for e in (npuopt.InvalidModelError, npuopt.UsageError, npuopt.VerificationError, npuopt.InternalError):
        assert issubclass(e, npuopt.NpuoptError)


def test_allow_unverified_returns_a_marked_result_where_verification_cannot_run(
    tmp_path: Path,
) -> None:
    # Symbolic height and width: tract has no shape to run the model at.
    dynhw = REAL / "yolov8_dynhw_ts.onnx"
    with pytest.raises(npuopt.InvalidModelError, match="--input-shape"):
        npuopt.optimize(dynhw)

    r = npuopt.optimize(dynhw, allow_unverified=True)
    assert r.unverified is not None and r.unverified.startswith("NOT VERIFIED: ")
    assert "'height'" in r.unverified
    assert r.report["unverified"] == r.unverified
    assert r.verification is None
    assert "NOT VERIFIED" in repr(r)
    meta = {p.key: p.value for p in r.model.metadata_props}
    assert meta["npuopt.verification"] == r.unverified

    dst = tmp_path / "out.onnx"
    w = npuopt.optimize_file(dynhw, dst, allow_unverified=True)
    assert dst.exists() and w.unverified == r.unverified
    assert {p.key: p.value for p in w.model.metadata_props}["npuopt.verification"] == w.unverified


def test_allow_unverified_still_raises_on_a_mismatch_and_changes_nothing_when_verified(
    repvgg: Path, tmp_path: Path,
) -> None:
    # Verification ran and failed: allow_unverified does not excuse that.
    dst = tmp_path / "out.onnx"
    with pytest.raises(npuopt.VerificationError):
        npuopt.optimize_file(repvgg, dst, rtol=0.0, atol=0.0, allow_unverified=True)
    assert not dst.exists()
    r = npuopt.optimize(repvgg, allow_unverified=True)
    assert r.unverified is None and r.verification["passed"]
    assert "npuopt.verification" not in {p.key for p in r.model.metadata_props}
