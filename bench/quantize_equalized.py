#!/usr/bin/env python3
"""int8 accuracy of npuopt's outputs, with and without equalize-ranges.

A benchmark, not a test: it prints figures and never fails on them.

For each full-size export it quantizes three float models that compute the
same function with ONNX Runtime's static quantization and measures how far
each int8 model's output is from its float model's:

  (a) the family's deploy export (timm `reparameterize_model`, made by
      fixtures/scripts/make_real_models.py --full) where the family has
      one, else the export itself;
  (b) npuopt's default pipeline on the training-form export;
  (c) (b) plus equalize-ranges (`--passes +equalize-ranges`).

Every model goes through the same ORT flow: `quant_pre_process` (shape
inference and ORT's graph optimizations, which fold any BatchNormalization
left), then `quantize_static` in QDQ format, int8 weights and activations,
MinMax calibration on 32 seeded standard-normal inputs. The output SQNR is
`10·log10(Σ y² / Σ (y − y_int8)²)` over 16 other seeded inputs, y the float
output of the same model. Rows are printed for per-tensor weights (the
issue's setting) and per-channel weights (for comparison).

A second table isolates the weights: every Conv/Gemm/MatMul weight is
rounded to int8 in numpy (symmetric, [-127, 127], per tensor or per output
channel) and the model runs in float otherwise — so it shows how much of
the gap between per-tensor and per-channel weights equalization closes,
without the activations' share of the error.

Random weights are not trained weights: BN statistics are calibrated on
random data by the generator, so activations are O(1), but the channel-range
imbalance of trained RepVGG/MobileOne (BN gammas learned over many epochs)
is not reproduced, and random inputs are not images. Read the figures as the
effect of equalization on these weights, not as ImageNet accuracy.

    python3 bench/quantize_equalized.py [--models DIR] [--npuopt PATH]

DIR defaults to bench/models (see fixtures/scripts/make_real_models.py
--full and bench/make_zoo.py); npuopt defaults to target/release/npuopt.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod,
                                      QuantFormat, QuantType, quantize_static)
from onnxruntime.quantization.shape_inference import quant_pre_process

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# (name, training-form export, deploy export or None)
MODELS = [
    ("MobileNetV2", "mobilenetv2_100_ts.onnx", None),
    ("MobileOne-S0", "mobileone_s0_ts.onnx", "mobileone_s0_deploy_ts.onnx"),
    ("RepVGG-A0", "repvgg_a0_ts.onnx", "repvgg_a0_deploy_ts.onnx"),
    ("ResNet-18", "resnet18_ts.onnx", None),
]


def inputs_of(path, n, seed):
    m = onnx.load(path, load_external_data=False)
    init = {i.name for i in m.graph.initializer}
    feeds = [i for i in m.graph.input if i.name not in init]
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        d = {}
        for i in feeds:
            dims = [x.dim_value if x.dim_value > 0 else 1
                    for x in i.type.tensor_type.shape.dim]
            d[i.name] = rng.standard_normal(dims).astype(np.float32)
        out.append(d)
    return out


class Reader(CalibrationDataReader):
    def __init__(self, samples):
        self.it = iter(samples)

    def get_next(self):
        return next(self.it, None)


def run(path, samples):
    """Outputs of `path` (a file or serialized bytes) on every sample."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    return [np.concatenate([o.ravel() for o in s.run(None, x)]) for x in samples]


def sqnr_db(ref, got):
    r = np.concatenate(ref).astype(np.float64)
    g = np.concatenate(got).astype(np.float64)
    noise = np.sum((r - g) ** 2)
    return float("inf") if noise == 0 else 10 * np.log10(np.sum(r ** 2) / noise)


def int8_sqnr(float_path, per_channel, tmp):
    pre = os.path.join(tmp, "pre.onnx")
    quant_pre_process(float_path, pre, skip_symbolic_shape=True)
    q = os.path.join(tmp, "q.onnx")
    quantize_static(pre, q, Reader(inputs_of(pre, 32, seed=1)),
                    quant_format=QuantFormat.QDQ, per_channel=per_channel,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax)
    evals = inputs_of(pre, 16, seed=2)
    return sqnr_db(run(pre, evals), run(q, evals))


def weights_rounded(path, per_channel):
    """The model with its layer weights rounded to int8 and back."""
    from onnx import numpy_helper as nh
    m = onnx.load(path)
    weights = {n.input[1] for n in m.graph.node
               if n.op_type in ("Conv", "Gemm", "MatMul") and len(n.input) > 1}
    for t in m.graph.initializer:
        if t.name not in weights:
            continue
        w = nh.to_array(t).astype(np.float64)
        if per_channel and w.ndim > 1:
            # Output channels: axis 0 of a conv weight (and of Gemm's B
            # with transB=1, PyTorch's Linear); the rounding granularity is
            # what matters here, not the exact axis of every layout.
            r = np.abs(w.reshape(w.shape[0], -1)).max(1).reshape([-1] + [1] * (w.ndim - 1))
        else:
            r = np.abs(w).max()
        step = np.where(r > 0, r / 127.0, 1.0)
        t.CopyFrom(nh.from_array((np.clip(np.round(w / step), -127, 127) * step)
                                 .astype(np.float32), t.name))
    return m.SerializeToString()


def weight_only_sqnr(path, per_channel):
    evals = inputs_of(path, 16, seed=2)
    return sqnr_db(run(path, evals), run(weights_rounded(path, per_channel), evals))


def npuopt(exe, src, dst, passes):
    cmd = [exe, "optimize", src, "-o", dst, "-q", "--force"]
    if passes:
        cmd += ["--passes", passes]
    subprocess.run(cmd, check=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=os.path.join(ROOT, "bench", "models"))
    ap.add_argument("--npuopt", default=os.path.join(ROOT, "target", "release", "npuopt"))
    a = ap.parse_args()
    print(f"onnxruntime {ort.__version__}; QDQ int8, MinMax on 32 random inputs, "
          f"output SQNR (dB) over 16 others")
    print(f"{'model':<14} {'weights':<12} {'(a) deploy':>11} {'(b) npuopt':>11} "
          f"{'(c) +CLE':>10} {'(c)-(a)':>8} {'(c)-(b)':>8}")
    weight_rows = []
    for name, train, deploy in MODELS:
        tpath = os.path.join(a.models, train)
        if not os.path.exists(tpath):
            print(f"{name:<14} missing {tpath}")
            continue
        dpath = os.path.join(a.models, deploy) if deploy else tpath
        with tempfile.TemporaryDirectory() as tmp:
            b = os.path.join(tmp, "b.onnx")
            c = os.path.join(tmp, "c.onnx")
            npuopt(a.npuopt, tpath, b, None)
            npuopt(a.npuopt, tpath, c, "+equalize-ranges")
            for per_channel in (False, True):
                figs = []
                for path in (dpath, b, c):
                    with tempfile.TemporaryDirectory() as t2:
                        figs.append(int8_sqnr(path, per_channel, t2))
                gran = "per-channel" if per_channel else "per-tensor"
                print(f"{name:<14} {gran:<12} {figs[0]:>11.2f} {figs[1]:>11.2f} "
                      f"{figs[2]:>10.2f} {figs[2] - figs[0]:>+8.2f} {figs[2] - figs[1]:>+8.2f}",
                      flush=True)
            w = [weight_only_sqnr(p, False) for p in (dpath, b, c)]
            ceiling = weight_only_sqnr(b, True)
            closed = (w[2] - w[1]) / (ceiling - w[1]) * 100 if ceiling > w[1] else float("nan")
            weight_rows.append(f"{name:<14} {w[0]:>11.2f} {w[1]:>11.2f} {w[2]:>10.2f} "
                               f"{ceiling:>13.2f} {closed:>10.0f}%")
    print("\nweights only (int8 weights, float activations), output SQNR in dB:")
    print(f"{'model':<14} {'(a) deploy':>11} {'(b) npuopt':>11} {'(c) +CLE':>10} "
          f"{'(b) per-chan':>13} {'gap closed':>11}")
    for r in weight_rows:
        print(r)


if __name__ == "__main__":
    sys.exit(main())
