#!/usr/bin/env python3
"""Writes the full-size model zoo npuopt is benchmarked on (not committed:
tens to hundreds of MB per model family).

    python bench/make_zoo.py [OUT_DIR]            # default bench/models/ (git-ignored)
    python bench/make_zoo.py /work/zoo --only yolov8n,resnet18_qdq
    python bench/make_zoo.py /work/zoo --skip-seed  # do not (re)run make_real_models.py --full
    python bench/make_zoo.py /work/zoo --only seed --seed-only mobilenetv2,resnet
    python bench/make_zoo.py --list                 # the group names

What it writes into OUT_DIR (random, deterministic weights; BatchNorm
gamma/beta randomised and running statistics calibrated on random data, as the
tiny fixtures of fixtures/scripts/):

* the seed families, by running `fixtures/scripts/make_real_models.py --full
  --out OUT_DIR` (MobileOne-S0, RepVGG-A0, RepGhostNet, GhostNet,
  MobileNetV2, RegNetX-002, FastViT-T8, ResNet-18; train/deploy; TorchScript
  opset 13 and dynamo opset 18; its manifest is kept as MANIFEST_seed.json);
* Ultralytics YOLOv8n, YOLOv10n, YOLO11n and RT-DETR-l built from their yaml
  (80 classes) at 640x640, not fused (`<m>_{ts,dynamo}.onnx`) and after
  Ultralytics' `model.fuse()` (`<m>_fused_{ts,dynamo}.onnx`), heads in export
  mode as `yolo export format=onnx` sets them;
* timm levit_128s, deit_tiny_distilled_patch16_224, mobilevit_xxs,
  convnext_atto, efficientnet_b0, repvit_m0_9 (train, and deploy =
  timm's reparameterize_model), and torchvision squeezenet1_1,
  shufflenet_v2_x1_0, mobilenet_v3_small, ssdlite320_mobilenet_v3_large, at
  224x224 (ssdlite 320x320);
* QDQ (onnxruntime quantize_static, int8, per-tensor and per-channel
  weights, MinMax over seeded random inputs) of mobilenetv2_100, resnet18 and
  yolov8n, from their TorchScript exports; float16 (keep_io_types=False) of
  mobilenetv2_100 and resnet18; symbolic batch (`_dynbatch_ts`) and symbolic
  batch/height/width (`_dynhw_ts`) TorchScript exports of resnet18 and
  yolov8n;
* MANIFEST.json: per file its family, exporter, opset, form (train / deploy /
  fused / qdq / fp16 / dynamic), input and output shapes, size, sha256, node
  count, op histogram, onnxruntime-vs-reference difference; and `failures`:
  every export or conversion that failed, with its error.

TorchScript exports: opset 17 (the seed families: 13), dynamo=False,
do_constant_folding=False. Dynamo exports: opset 18, one self-contained file,
all exporter metadata kept. Every file is checked with onnx.checker and run
with onnxruntime against torch (or, for QDQ/fp16, against the float model).

One model at a time, one thread (the machine is shared). The manifest is
rewritten after every file, and files already in it are skipped unless
--force: an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
import torch
import torch.nn as nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "fixtures" / "scripts"))
import make_deploy_models as mdm  # noqa: E402
import make_real_models as mrm  # noqa: E402

YOLO_HW = 640
CLS_HW = 224
# Fewer and smaller calibration batches than the tiny fixtures: a 640x640
# RT-DETR-l forward takes seconds on one thread.
CALIB_BATCHES = 3
CALIB_BATCH_SIZE = 4
QDQ_CALIB_SAMPLES = 8


def calibrated(model: nn.Module, shape: tuple, seed_name: str) -> tuple:
    """Randomise BN affine, calibrate BN stats on random batches, return the test input."""
    gen = torch.Generator().manual_seed(mrm.seed_for(seed_name))
    mrm.randomise_affine(model, gen)
    model.eval()
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    with torch.no_grad():
        for _ in range(CALIB_BATCHES if bns else 0):
            model(torch.randn(CALIB_BATCH_SIZE, *shape[1:], generator=gen))
    model.eval()
    return (torch.randn(*shape, generator=gen),)


def export_dynamo_full(model, x, path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, x, str(path), dynamo=True, opset_version=mdm.DYNAMO_OPSET,
                          external_data=False)
    data = Path(str(path) + ".data")
    if data.exists():
        data.unlink()


def plain_jobs(stem, family, form, desc, model, x, input_names, output_names,
               exporters=("ts", "dynamo"), extra=None) -> list[mdm.Job]:
    with torch.no_grad():
        ref = mdm.flat_outputs(model(*x))
    jobs = []
    if "ts" in exporters:
        jobs.append(mdm.Job(f"{stem}_ts.onnx", family, form, "ts", desc,
                            lambda p: mdm.export_ts(model, x, p, input_names, output_names),
                            x, ref, extra=dict(extra or {})))
    if "dynamo" in exporters:
        jobs.append(mdm.Job(f"{stem}_dynamo.onnx", family, form, "dynamo", desc,
                            lambda p: export_dynamo_full(model, x, p), x, ref,
                            extra=dict(extra or {})))
    return jobs


# --------------------------------------------------------------------------
# Ultralytics
# --------------------------------------------------------------------------


def ultralytics_jobs(name: str, yaml_name: str) -> Callable[[], list[mdm.Job]]:
    def make():
        from ultralytics.nn.tasks import DetectionModel, RTDETRDetectionModel

        torch.manual_seed(mrm.seed_for(name + "/full"))
        cls = RTDETRDetectionModel if name.startswith("rtdetr") else DetectionModel
        model = cls(yaml_name, nc=80, verbose=False)
        for p in model.parameters():
            p.requires_grad_(False)
        x = calibrated(model, (1, 3, YOLO_HW, YOLO_HW), name + "/full")
        mdm.set_export_mode(model, dynamic=False, hw=YOLO_HW)
        desc = f"Ultralytics {yaml_name}, 80 classes, random weights, export-mode head, 1x3x640x640"
        if name.startswith("rtdetr"):
            desc += (" (output rows are chosen by TopK over near-tied random scores: onnxruntime and"
                     " torch may order them differently, so the elementwise difference can be large)")
        names = (["images"], ["output0"])
        jobs = plain_jobs(name, name, "train", desc + ", not fused", model, x, *names)
        fused = copy.deepcopy(model).fuse(verbose=False)
        mdm.set_export_mode(fused, dynamic=False, hw=YOLO_HW)
        jobs += plain_jobs(name + "_fused", name, "fused", desc + ", after model.fuse()",
                           fused, x, *names)
        if name == "yolov8n":
            jobs += dynamic_jobs(name, name, desc, model, x, *names, yolo=True)
        return jobs
    return make


def dynamic_jobs(stem, family, desc, model, x, input_names, output_names, yolo=False):
    """Symbolic batch (anchors of a YOLO head baked), and symbolic batch/height/width
    (a YOLO head in dynamic mode, decoding anchors from the runtime shapes)."""
    iname, oname = input_names[0], output_names[0]
    b, c, h, w = x[0].shape
    x2 = (torch.cat([x[0], x[0].flip(-1)]),)
    with torch.no_grad():
        ref2 = mdm.flat_outputs(copy.deepcopy(model)(*x2))
    axes_b = {iname: {0: "batch"}, oname: {0: "batch"}}
    jobs = [mdm.Job(f"{stem}_dynbatch_ts.onnx", family, "dynamic", "ts",
                    desc + "; dynamic_axes batch",
                    lambda p: mdm.export_ts(model, x, p, input_names, output_names, dynamic_axes=axes_b),
                    x2, ref2, extra={"tested_with_input_shape": list(x2[0].shape)})]
    dyn = copy.deepcopy(model)
    if yolo:
        mdm.set_export_mode(dyn, dynamic=True, hw=h)
    x3 = (torch.randn(2, c, h * 3 // 4, w, generator=torch.Generator().manual_seed(3)),)
    with torch.no_grad():
        ref3 = mdm.flat_outputs(copy.deepcopy(dyn)(*x3))
    axes_hw = {iname: {0: "batch", 2: "height", 3: "width"}, oname: {0: "batch"}}
    if yolo:
        axes_hw[oname][2] = "anchors"
    jobs.append(mdm.Job(f"{stem}_dynhw_ts.onnx", family, "dynamic", "ts",
                        desc + "; dynamic_axes batch/height/width",
                        lambda p: mdm.export_ts(dyn, x, p, input_names, output_names,
                                                dynamic_axes=axes_hw),
                        x3, ref3, extra={"tested_with_input_shape": list(x3[0].shape)}))
    return jobs


# --------------------------------------------------------------------------
# timm / torchvision classifiers
# --------------------------------------------------------------------------


def timm_jobs(name: str, reparam: bool = False) -> Callable[[], list[mdm.Job]]:
    def make():
        import timm
        from timm.utils.model import reparameterize_model

        torch.manual_seed(mrm.seed_for(name + "/full"))
        model = timm.create_model(name, pretrained=False)
        x = calibrated(model, (1, 3, CLS_HW, CLS_HW), name + "/full")
        desc = f"timm {name}, random weights, 1x3x224x224"
        jobs = plain_jobs(name, name, "train", desc, model, x, ["input"], ["output"])
        if reparam:
            dep = reparameterize_model(copy.deepcopy(model))
            with torch.no_grad():
                d = float(np.abs(mdm.flat_outputs(dep(*x))[0] - jobs[0].reference[0]).max())
            jobs += plain_jobs(name + "_deploy", name, "deploy", desc + ", reparameterize_model",
                               dep, x, ["input"], ["output"],
                               extra={"torch_deploy_vs_train_max_abs_diff": mrm.fmt(d)})
        return jobs
    return make


def torchvision_jobs(name: str, hw: int = CLS_HW) -> Callable[[], list[mdm.Job]]:
    def make():
        import torchvision

        torch.manual_seed(mrm.seed_for(name + "/full"))
        model = torchvision.models.get_model(name, weights=None, weights_backbone=None) \
            if name.startswith("ssdlite") else torchvision.models.get_model(name, weights=None)
        x = calibrated(model, (1, 3, hw, hw), name + "/full")
        desc = f"torchvision {name}, random weights, 1x3x{hw}x{hw}"
        outs = ["boxes", "scores", "labels"] if name.startswith("ssdlite") else ["output"]
        if name.startswith("ssdlite"):
            # the detection model takes a list of images and returns a list of dicts
            class Wrap(nn.Module):
                def __init__(self, m):
                    super().__init__()
                    self.m = m

                def forward(self, img):
                    d = self.m(list(img))[0]
                    return d["boxes"], d["scores"], d["labels"]
            model = Wrap(model).eval()
        return plain_jobs(name, name, "train", desc, model, x, ["input"], outs)
    return make


# --------------------------------------------------------------------------
# Derived: QDQ, fp16, symbolic dims of the seed exports
# --------------------------------------------------------------------------


def quantize(src: Path, dst: Path, per_channel: bool, shape: tuple, seed: int) -> None:
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)

    iname = onnx.load(str(src), load_external_data=False).graph.input[0].name

    class Reader(CalibrationDataReader):
        def __init__(self):
            rng = np.random.default_rng(seed)
            self.it = iter(range(QDQ_CALIB_SAMPLES))
            self.rng = rng

        def get_next(self):
            if next(self.it, None) is None:
                return None
            return {iname: self.rng.standard_normal(shape).astype(np.float32)}

    quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=per_channel, activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8)


def derived_jobs(out: Path, base: str, shape: tuple, fp16: bool) -> Callable[[], list[mdm.Job]]:
    """QDQ (and fp16) of OUT/<base>_ts.onnx, checked against onnxruntime on the float file."""
    def make():
        src = out / f"{base}_ts.onnx"
        if not src.exists():
            raise FileNotFoundError(f"{src} (made by an earlier group) is missing")
        gen = np.random.default_rng(mrm.seed_for(base + "/derived"))
        x = (torch.from_numpy(gen.standard_normal(shape).astype(np.float32)),)
        ref = mdm.run_ort(src, [x[0].numpy()])
        desc = f"{src.name} (TorchScript export, BN unfused)"
        jobs = []
        for kind, pc in (("perchannel", True), ("pertensor", False)):
            jobs.append(mdm.Job(f"{base}_qdq_{kind}.onnx", base, "qdq", "ts+quantize_static",
                                desc + f" through onnxruntime quantize_static: QDQ, int8 weights {kind}, "
                                f"int8 activations, MinMax on {QDQ_CALIB_SAMPLES} seeded N(0,1) inputs",
                                lambda p, pc=pc: quantize(src, p, pc, shape, seed=17), x, ref,
                                reference_kind="onnxruntime on the float file",
                                extra={"per_channel": pc, "source": src.name}))
        if fp16:
            def to_fp16(p: Path):
                from onnxruntime.transformers.float16 import convert_float_to_float16
                onnx.save(convert_float_to_float16(onnx.load(str(src)), keep_io_types=False), str(p))
            jobs.append(mdm.Job(f"{base}_fp16.onnx", base, "fp16", "ts+float16",
                                desc + " converted with convert_float_to_float16(keep_io_types=False)",
                                to_fp16, x, ref, reference_kind="onnxruntime on the float file",
                                test_inputs=[x[0].numpy().astype(np.float16)],
                                extra={"source": src.name}))
        return jobs
    return make


def resnet18_dynamic_jobs() -> list[mdm.Job]:
    import torchvision

    arch = next(a for a in mrm.ARCHS if a.name == "resnet")
    model, x = mrm.build(arch, full_size=True)  # the same weights as resnet18_ts.onnx
    desc = "torchvision resnet18, random weights (as make_real_models.py --full), TorchScript opset 17"
    del torchvision
    return dynamic_jobs("resnet18", "resnet18", desc, model, (x,), ["input"], ["output"])


# --------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------


def groups(out: Path) -> dict[str, Callable[[], list[mdm.Job]]]:
    return {
        "yolov8n": ultralytics_jobs("yolov8n", "yolov8n.yaml"),
        "yolov10n": ultralytics_jobs("yolov10n", "yolov10n.yaml"),
        "yolo11n": ultralytics_jobs("yolo11n", "yolo11n.yaml"),
        "rtdetr_l": ultralytics_jobs("rtdetr_l", "rtdetr-l.yaml"),
        "levit_128s": timm_jobs("levit_128s"),
        "deit_tiny_distilled": timm_jobs("deit_tiny_distilled_patch16_224"),
        "mobilevit_xxs": timm_jobs("mobilevit_xxs"),
        "convnext_atto": timm_jobs("convnext_atto"),
        "efficientnet_b0": timm_jobs("efficientnet_b0"),
        "repvit_m0_9": timm_jobs("repvit_m0_9", reparam=True),
        "squeezenet1_1": torchvision_jobs("squeezenet1_1"),
        "shufflenet_v2_x1_0": torchvision_jobs("shufflenet_v2_x1_0"),
        "mobilenet_v3_small": torchvision_jobs("mobilenet_v3_small"),
        "ssdlite320": torchvision_jobs("ssdlite320_mobilenet_v3_large", hw=320),
        "resnet18_dynamic": resnet18_dynamic_jobs,
        "mobilenetv2_derived": derived_jobs(out, "mobilenetv2_100", (1, 3, 224, 224), fp16=True),
        "resnet18_derived": derived_jobs(out, "resnet18", (1, 3, 224, 224), fp16=True),
        "yolov8n_derived": derived_jobs(out, "yolov8n", (1, 3, 640, 640), fp16=False),
    }


def seed_entries(out: Path) -> dict:
    """make_real_models.py --full's manifest, in this manifest's vocabulary."""
    p = out / "MANIFEST_seed.json"
    if not p.exists():
        return {}
    seed = json.loads(p.read_text())
    files = {}
    for name, e in seed.get("files", {}).items():
        e = dict(e)
        e["family"] = e.pop("architecture")
        e["reference"] = "torch"
        if "ort_vs_torch_max_abs_diff" in e:
            e["ort_vs_reference_max_abs_diff"] = e.pop("ort_vs_torch_max_abs_diff")
        e["made_by"] = "make_real_models.py --full"
        files[name] = e
    return files


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", nargs="?", default=str(ROOT / "bench" / "models"))
    ap.add_argument("--only", default="", help="comma-separated groups (see --list); 'seed' = the seed families")
    ap.add_argument("--skip-seed", action="store_true", help="do not run make_real_models.py --full")
    ap.add_argument("--force", action="store_true", help="redo files already in the manifest")
    ap.add_argument("--seed-only", default="", help="comma-separated make_real_models.py families "
                    "(mobileone,repvgg,repghostnet,ghostnet,mobilenetv2,regnetx,fastvit,resnet); default all")
    ap.add_argument("--list", action="store_true")
    args = ap.parse_args()

    out = Path(args.out).resolve()
    table = groups(out)
    if args.list:
        print("seed " + " ".join(table))
        return 0
    out.mkdir(parents=True, exist_ok=True)
    only = {s for s in args.only.split(",") if s}
    unknown = only - set(table) - {"seed"}
    if unknown:
        ap.error(f"unknown groups {sorted(unknown)}")

    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)

    manifest_path = out / "MANIFEST.json"
    old = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    files: dict = {k: v for k, v in old.get("files", {}).items() if v.get("made_by") != "make_real_models.py --full"}
    failures: list = list(old.get("failures", []))

    def write_manifest():
        all_files = dict(files)
        all_files.update(seed_entries(out))
        seed = json.loads((out / "MANIFEST_seed.json").read_text()) if (out / "MANIFEST_seed.json").exists() else {}
        seed_failures = [dict(f, made_by="make_real_models.py --full") for f in seed.get("failures", [])]
        manifest = {
            "comment": "Generated by bench/make_zoo.py (and fixtures/scripts/make_real_models.py --full, "
                       "see MANIFEST_seed.json); do not edit by hand.",
            "ts_export": {"opset_version": mdm.TS_OPSET, "seed_families_opset_version": mrm.TS_OPSET,
                          "do_constant_folding": False, "dynamo": False},
            "dynamo_export": {"opset_version": mdm.DYNAMO_OPSET, "external_data": False,
                              "optimize": True, "node_metadata_kept": "all"},
            "bn_calibration": {"batches": CALIB_BATCHES, "batch_size": CALIB_BATCH_SIZE,
                               "seed_families": {"batches": mrm.CALIB_BATCHES,
                                                 "batch_size": mrm.CALIB_BATCH_SIZE}},
            "versions": dict(mrm.versions(), ultralytics=__import__("ultralytics").__version__),
            "files": dict(sorted(all_files.items())),
            "failures": sorted(failures + seed_failures, key=lambda f: f["file"]),
        }
        tmp = manifest_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, manifest_path)

    def run_seed():
        """make_real_models.py --full into a scratch folder inside OUT (it writes its own
        MANIFEST.json), then the files moved into OUT and its manifest merged into
        MANIFEST_seed.json."""
        fams = [f for f in args.seed_only.split(",") if f]
        print(f"== seed families: make_real_models.py --full {' '.join(fams) or '(all)'}", flush=True)
        t = time.time()
        tmp = out / ".seed_tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        cmd = [sys.executable, str(ROOT / "fixtures/scripts/make_real_models.py"), "--full", "--out", str(tmp)]
        if fams:
            cmd += ["--only", ",".join(fams)]
        r = subprocess.run(cmd)
        seed_path = out / "MANIFEST_seed.json"
        seed = json.loads(seed_path.read_text()) if seed_path.exists() else {"files": {}, "failures": []}
        if (tmp / "MANIFEST.json").exists():
            new = json.loads((tmp / "MANIFEST.json").read_text())
            made = set(new.get("files", {})) | {f["file"] for f in new.get("failures", [])}
            new["files"] = dict(sorted({**{k: v for k, v in seed.get("files", {}).items() if k not in made},
                                        **new.get("files", {})}.items()))
            new["failures"] = sorted([f for f in seed.get("failures", []) if f["file"] not in made]
                                     + new.get("failures", []), key=lambda f: f["file"])
            seed = new
        for f in tmp.glob("*.onnx"):
            os.replace(f, out / f.name)
        seed_path.write_text(json.dumps(seed, indent=2, sort_keys=True) + "\n")
        shutil.rmtree(tmp, ignore_errors=True)
        print(f"   seed families done in {time.time() - t:.0f} s (exit {r.returncode})", flush=True)
        write_manifest()

    # The Ultralytics and timm/torchvision models first, then the seed families,
    # then what is derived from the seed exports (QDQ, fp16 read their files).
    seed_done = args.skip_seed or (only and "seed" not in only)
    for g, make in table.items():
        if not seed_done and g.endswith("_derived"):
            run_seed()
            seed_done = True
        if only and g not in only:
            continue
        print(f"== {g}", flush=True)
        t = time.time()
        try:
            jobs = make()
        except Exception as e:  # the model itself could not be built
            failures = [f for f in failures if f.get("group") != g]
            failures.append({"file": f"{g} (all)", "group": g, "error": mdm.error_text(e)[:800]})
            print(f"  FAILED to build {g}: {mdm.error_text(e)[:800]}", flush=True)
            write_manifest()
            continue
        for job in jobs:
            if job.file in files and (out / job.file).exists() and not args.force:
                print(f"  {job.file}: already made, skipped", flush=True)
                continue
            files.pop(job.file, None)
            failures = [f for f in failures if f["file"] not in (job.file, f"{g} (all)")]
            tj = time.time()
            mdm.run_job(job, out, files, failures)
            if job.file in files:
                files[job.file]["seconds_to_make"] = round(time.time() - tj, 1)
            for f in failures:
                if f["file"] == job.file:
                    f["group"] = g
            write_manifest()
            sys.stdout.flush()
        print(f"   {g} done in {time.time() - t:.0f} s", flush=True)
    if not seed_done:
        run_seed()
    write_manifest()
    print(f"wrote {manifest_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
