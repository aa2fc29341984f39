"""Bytes and paths work without onnx installed; only ModelProto needs it."""

from __future__ import annotations

from pathlib import Path

from conftest import run_python

CODE = """
import sys
sys.modules["onnx"] = None  # as if onnx were not installed: importing it fails
import npuopt
path = sys.argv[1]
r = npuopt.optimize(path)
assert r.verification["passed"]
assert npuopt.optimize(open(path, "rb").read()).bytes == r.bytes
assert npuopt.inspect(r.bytes).summary["nodes"] == r.report["totals"]["nodes"]["after"]
npuopt.verify(path, r.bytes)
try:
    r.model
except ImportError:
    print("ModelProto needs onnx")
"""


def test_bytes_and_paths_work_without_onnx(repvgg: Path) -> None:
    done = run_python(CODE, str(repvgg))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ModelProto needs onnx"
