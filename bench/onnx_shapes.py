#!/usr/bin/env python3
"""What ONNX's own shape inference sees of each model, for the `infer`
benchmark to compare npuopt's inference with.

For every model: symbolic input dims are pinned (batch 1; height and width
640 for the Ultralytics detectors, 320 for SSDLite, 224 otherwise — the
sizes the zoo exports were made at), then
`onnx.shape_inference.infer_shapes(model, data_prop=True)` runs, and the
script records the pins, how many node outputs have a concrete shape, and
the MACs of Conv/ConvTranspose/Gemm/MatMul counted from those shapes with
npuopt's formulas (ir/src/macs.rs). Output: one JSON document.

    /work/pyenv/bin/python bench/onnx_shapes.py /work/zoo/*.onnx > /tmp/onnx_shapes.json
    cargo run --release -p npuopt-bench --bin infer -- --onnx /tmp/onnx_shapes.json /work/zoo/*.onnx

Never run by tests or CI.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import onnx
from onnx import shape_inference


def image_size(name: str) -> int:
    if name.startswith(("yolo", "rtdetr")):
        return 640
    if name.startswith("ssdlite"):
        return 320
    return 224


def pins(model: onnx.ModelProto, name: str) -> dict:
    """Symbolic input dims → values, as `--input-shape` would set them."""
    init = {t.name for t in model.graph.initializer}
    out = {}
    for i in model.graph.input:
        if i.name in init:
            continue
        dims = i.type.tensor_type.shape.dim
        if all(d.HasField("dim_value") for d in dims):
            continue
        shape = []
        for axis, d in enumerate(dims):
            if d.HasField("dim_value"):
                shape.append(d.dim_value)
            elif axis == 0:
                shape.append(1)
            else:
                shape.append(image_size(name))
        out[i.name] = shape
    return out


def concrete(vi) -> list | None:
    t = vi.type.tensor_type
    if not t.HasField("shape"):
        return None
    dims = []
    for d in t.shape.dim:
        if not d.HasField("dim_value"):
            return None
        dims.append(d.dim_value)
    return dims


def main(paths: list[str]) -> None:
    result = {"onnx": onnx.__version__, "models": {}}
    for p in paths:
        name = Path(p).name
        model = onnx.load(p, load_external_data=False)
        pinned = pins(model, name)
        for i in model.graph.input:
            if i.name in pinned:
                for d, v in zip(i.type.tensor_type.shape.dim, pinned[i.name]):
                    d.Clear()
                    d.dim_value = v
        try:
            inferred = shape_inference.infer_shapes(model, data_prop=True)
        except Exception as e:  # noqa: BLE001 - reported
            result["models"][name] = {"error": str(e).splitlines()[0]}
            continue
        shapes = {}
        for vi in list(inferred.graph.value_info) + list(inferred.graph.output) + list(inferred.graph.input):
            shapes[vi.name] = concrete(vi)
        for t in inferred.graph.initializer:
            shapes[t.name] = list(t.dims)
        for n in inferred.graph.node:
            if n.op_type == "Constant":
                for a in n.attribute:
                    if a.name == "value":
                        shapes[n.output[0]] = list(a.t.dims)
        outputs = [o for n in inferred.graph.node for o in n.output if o]
        sized = sum(1 for o in outputs if shapes.get(o) is not None)
        macs, unknown = 0, 0
        for n in inferred.graph.node:
            if n.domain not in ("", "ai.onnx"):
                continue
            s = lambda i: shapes.get(n.input[i]) if i < len(n.input) and n.input[i] else None  # noqa: E731
            out = shapes.get(n.output[0]) if n.output else None
            m = None
            if n.op_type == "Conv" and out is not None and s(1) is not None:
                m = math.prod(out) * math.prod(s(1)[1:])
            elif n.op_type == "ConvTranspose" and s(0) is not None and s(1) is not None:
                m = math.prod(s(0)) * math.prod(s(1)[1:])
            elif n.op_type == "Gemm" and out is not None and s(0) is not None:
                trans_a = any(a.name == "transA" and a.i for a in n.attribute)
                m = math.prod(out) * (s(0)[0] if trans_a else s(0)[1])
            elif n.op_type == "MatMul" and out is not None and s(0) is not None:
                m = math.prod(out) * s(0)[-1]
            elif n.op_type in ("Conv", "ConvTranspose", "Gemm", "MatMul"):
                unknown += 1
            if m is not None:
                macs += m
        result["models"][name] = {
            "pins": pinned,
            "node_outputs": len(outputs),
            "sized": sized,
            "macs": macs,
            "unknown_mac_nodes": unknown,
        }
    json.dump(result, sys.stdout, indent=1, sort_keys=True)
    print()


if __name__ == "__main__":
    main(sys.argv[1:])
