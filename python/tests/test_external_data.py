"""Models whose tensors live in a data file beside them."""

from __future__ import annotations

from pathlib import Path

import onnx
from onnx import numpy_helper
import pytest

import npuopt


@pytest.fixture
def external(tmp_path: Path, repvgg: Path) -> Path:
    """RepVGG saved with every tensor of 1 KiB or more in model.onnx.data."""
    path = tmp_path / "model.onnx"
    onnx.save(
        onnx.load(str(repvgg)),
        str(path),
        save_as_external_data=True,
        location="model.onnx.data",
        size_threshold=1024,
    )
    assert (tmp_path / "model.onnx.data").stat().st_size > 0
    return path


def test_a_modelproto_with_external_data_needs_its_folder(external: Path) -> None:
    proto = onnx.load(str(external), load_external_data=False)
    assert any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer)
    with pytest.raises(npuopt.InvalidModelError, match="model.onnx.data"):
        npuopt.optimize(proto)
    r = npuopt.optimize(proto, base_dir=external.parent)
    assert r.verification["passed"]
    # The result carries its tensors inline.
    assert all(t.data_location != onnx.TensorProto.EXTERNAL for t in r.model.graph.initializer)
    # The same model as onnx loads it (external data read in by onnx; its
    # tensors then say data_location=DEFAULT, so the bytes differ a little).
    same = npuopt.optimize(onnx.load(str(external)))
    assert same.model.graph.node == r.model.graph.node
    assert tensors(same.model) == tensors(r.model)


def tensors(m: onnx.ModelProto) -> dict:
    return {t.name: numpy_helper.to_array(t).tobytes() for t in m.graph.initializer}


def test_a_model_file_with_external_data_reads_it_from_its_folder(external: Path, tmp_path: Path) -> None:
    r = npuopt.optimize(external)
    assert r.verification["passed"]
    with pytest.raises(npuopt.UsageError, match="base_dir"):
        npuopt.optimize(external, base_dir=tmp_path)


def test_optimize_file_writes_external_data(external: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "opt.onnx"
    out.parent.mkdir()
    r = npuopt.optimize_file(external, out, external_data=True)
    assert (out.parent / "opt.onnx.data").stat().st_size > 0
    assert r.report["output"]["bytes"] == out.stat().st_size
    assert r.model.graph.initializer  # onnx.load reads the data file back
    onnx.checker.check_model(str(out))
    npuopt.verify(external, out)
