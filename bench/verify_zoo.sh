#!/usr/bin/env bash
# Verification on full-size exports: for each model of the zoo, the whole
# `npuopt optimize` run (default pipeline, verification on), its wall time
# and peak memory, what the verdict measured against, each output's
# verdict and ratio to the noise floor, and where tract's time went (load
# = parse + type + optimize + plan, run = all samples) per model.
#
#   cargo build --release && bench/verify_zoo.sh [ZOO_DIR] [MODEL ...]
#
# ZOO_DIR defaults to /work/zoo (made by bench/make_zoo.py); NPUOPT_BIN
# picks another binary (a build to compare with). Prints figures; asserts
# nothing.
set -uo pipefail
cd "$(dirname "$0")/.."
zoo=${1:-/work/zoo}
shift || true
models=("$@")
[ ${#models[@]} -eq 0 ] && models=(mobileone_s0_ts resnet18_ts yolov8n_ts yolo11n_ts yolov10n_ts rtdetr_l_ts mobilenetv2_100_fp16 resnet18_fp16)
bin=${NPUOPT_BIN:-./target/release/npuopt}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for m in "${models[@]}"; do
    f="$zoo/$m.onnx"
    [ -f "$f" ] || { echo "== $m: missing ($f)"; continue; }
    NPUOPT_TIMINGS=1 /usr/bin/time -f "%e %M" -o "$tmp/time" "$bin" optimize -q "$f" \
        -o "$tmp/out.onnx" --report "$tmp/r.json" 2>"$tmp/err"
    rc=$?
    read -r secs kb <"$tmp/time"
    echo "== $m: exit $rc, $(( $(stat -c %s "$f") / 1048576 )) MiB, ${secs} s, peak $(( kb / 1024 )) MiB"
    [ $rc -ne 0 ] && { head -c 300 "$tmp/err"; echo; continue; }
    python3 - "$tmp/r.json" <<'PY'
import json, sys
v = json.load(open(sys.argv[1]))["verification"]
print("   reference:", v["reference"], "|", ", ".join(
    f"{o['name']} {o['verdict']} (ratio {o['ratio']:.2f})" if o["ratio"] is not None
    else f"{o['name']} {o['verdict']}" for o in v["outputs"]))
for t in v["timings"]:
    print(f"   {t['model'][-60:]:<60} load {t['load_s']:.2f} s  run {t['run_s']:.2f} s")
PY
done
