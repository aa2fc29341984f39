#!/usr/bin/env python3
"""Times npuopt's default pipeline (no verification) against onnxsim and
onnxslim on the same full-size exports, in the same run, and prints the
ratios of wall time and peak memory. A benchmark, not a test: it never fails
on a slow machine.

    python3 bench/compare_simplifiers.py [MODEL.onnx ...]

Defaults to bench/models/{mobileone_s0,repvgg_a0,resnet18}_ts.onnx (made by
fixtures/scripts/make_real_models.py --full). npuopt is the release build of
the bench binary `pipeline` (cargo build --release -p npuopt-bench); onnxsim
and onnxslim run only if installed. Wall time and peak RSS come from GNU
time for each process as a whole (interpreter start-up included for the
Python tools, as a user sees it).
"""
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT = [os.path.join(ROOT, "bench", "models", f"{m}_ts.onnx")
           for m in ("mobileone_s0", "repvgg_a0", "resnet18")]


def timed(cmd):
    """(wall seconds, peak RSS MiB, stdout) of one command under GNU time."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as t:
        out = subprocess.run(["/usr/bin/time", "-f", "%e %M", "-o", t.name] + cmd,
                             capture_output=True, text=True)
        if out.returncode != 0:
            return None, None, out.stderr.strip().splitlines()[-1:] or ["failed"]
        wall, kib = t.read().split()[-2:]
        return float(wall), int(kib) / 1024.0, out.stdout.strip()


def node_count(path):
    import onnx
    return len(onnx.load(path, load_external_data=False).graph.node)


def main():
    models = sys.argv[1:] or DEFAULT
    target_dir = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    npuopt = os.path.join(target_dir, "release", "pipeline")
    if not os.path.exists(npuopt):
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "npuopt-bench", "--bin", "pipeline"],
                       cwd=ROOT, check=True)
    tools = [("npuopt", lambda i, o: [npuopt, i, o])]
    if shutil.which("onnxslim"):
        tools.append(("onnxslim", lambda i, o: ["onnxslim", i, o]))
    if shutil.which("onnxsim"):
        tools.append(("onnxsim", lambda i, o: ["onnxsim", i, o]))
    print(f"{'model':<28} {'MiB':>6} {'tool':<9} {'nodes':>12} {'wall s':>7} {'peak MiB':>9} {'RSS/file':>8}")
    for model in models:
        if not os.path.exists(model):
            print(f"{os.path.basename(model)}: missing (run make_real_models.py --full)")
            continue
        size = os.path.getsize(model) / 2**20
        results = {}
        with tempfile.TemporaryDirectory() as d:
            for name, cmd in tools:
                out = os.path.join(d, f"{name}.onnx")
                wall, rss, _ = timed(cmd(model, out))
                if wall is None:
                    print(f"{os.path.basename(model):<28} {size:>6.1f} {name:<9} failed")
                    continue
                nodes = f"{node_count(model)}→{node_count(out)}"
                results[name] = (wall, rss)
                print(f"{os.path.basename(model):<28} {size:>6.1f} {name:<9} {nodes:>12} {wall:>7.2f} {rss:>9.1f} {rss / size:>8.2f}")
        if "npuopt" in results:
            w0, m0 = results["npuopt"]
            for name, (w, m) in results.items():
                if name != "npuopt":
                    print(f"{'':<28} {'':>6} npuopt vs {name}: {w / max(w0, 1e-3):.1f}× faster, {m / m0:.1f}× less memory")


if __name__ == "__main__":
    main()
