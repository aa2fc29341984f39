"""A model over 100 MB passed as bytes is shared with Rust, not copied.

Measured in a fresh interpreter by its peak resident memory (ru_maxrss):
after reading the model (the baseline), an optimization adds the result's
bytes (one model size) and small change — a copy of the input in Rust would
add a second model size."""

from __future__ import annotations

from pathlib import Path

from conftest import run_python

MAKE = """
import sys
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

n = 5500  # a 5500 x 5500 float weight: 121 MB
w = numpy_helper.from_array(np.arange(n * n, dtype=np.float32).reshape(n, n) / (n * n), "w")
g = helper.make_graph(
    [helper.make_node("MatMul", ["x", "w"], ["y"], name="matmul")],
    "big",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, n])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, n])],
    [w],
)
onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), sys.argv[1])
"""

MEASURE = """
import resource, sys
import npuopt
data = open(sys.argv[1], "rb").read()
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
r = npuopt.optimize(data, verify=False)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
assert r.bytes == data, "nothing to rewrite: the model comes back byte for byte"
print(len(data), peak - base)
"""


def test_a_large_model_as_bytes_is_not_copied(tmp_path: Path) -> None:
    path = tmp_path / "big.onnx"
    made = run_python(MAKE, str(path))
    assert made.returncode == 0, made.stderr
    done = run_python(MEASURE, str(path))
    assert done.returncode == 0, done.stderr
    size, grown = map(int, done.stdout.split())
    assert size > 100 * 2**20
    print(f"model {size / 2**20:.1f} MiB; peak memory grew by {grown / 2**20:.1f} MiB "
          f"({grown / size:.2f} model sizes) during npuopt.optimize(bytes)")
    # The result is one model size; a copy of the input would be another.
    assert grown < 1.5 * size, (size, grown)
