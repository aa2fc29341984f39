"""Benchmark (not a test): the Python package against the command line, and
against onnxsim and onnxslim in the same process, on the same models.

For each model it prints, from separate processes so that each peak is its
own: the CLI's wall time and peak RSS (`npuopt optimize M -o OUT -q`); the
time of `npuopt.optimize(onnx.load(M))` and what the call adds to the
process's peak RSS; the same for `onnxsim.simplify` and `onnxslim.slim`.
CPU times (user + system, all threads) are printed beside wall times: on
a machine others share, they are the steadier figure.

    python bench/python_api.py --cli target/release/npuopt MODEL.onnx...

Needs a Python with the npuopt package installed (or on PYTHONPATH), and
onnxsim and onnxslim for their rows. Figures only: it never fails on a
slow machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

CALL = r"""
import json, resource, sys, time
import onnx
which, path = sys.argv[1], sys.argv[2]
rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
def cpu():
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime
if which == "npuopt":
    import npuopt
    run = lambda m: npuopt.optimize(m).bytes
elif which == "onnxsim":
    import onnxsim
    run = lambda m: onnxsim.simplify(m)[0]
else:
    import onnxslim
    run = lambda m: onnxslim.slim(m)
t0 = time.perf_counter()
model = onnx.load(path)
t1 = time.perf_counter()
base, c0 = rss(), cpu()
out = run(model)
t2 = time.perf_counter()
print(json.dumps({"load_s": t1 - t0, "call_s": t2 - t1, "cpu_s": cpu() - c0, "base": base, "peak": rss()}))
"""


def cli_run(cli: str, model: str) -> dict:
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "out.onnx")
        t0 = time.perf_counter()
        p = subprocess.run(
            ["/usr/bin/time", "-f", "%M %U %S", cli, "optimize", model, "-o", out, "-q"],
            capture_output=True, text=True,
        )
        wall = time.perf_counter() - t0
    if p.returncode != 0:
        return {"error": p.stderr.strip().splitlines()[-1:]}
    peak, user, sys_ = p.stderr.strip().splitlines()[-1].split()
    return {"wall_s": wall, "cpu_s": float(user) + float(sys_), "peak": int(peak) * 1024}


def py_run(which: str, model: str) -> dict:
    p = subprocess.run([sys.executable, "-c", CALL, which, model], capture_output=True, text=True)
    if p.returncode != 0:
        return {"error": (p.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(p.stdout.strip().splitlines()[-1])


def mib(n: float) -> str:
    return f"{n / 2**20:7.1f} MiB"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cli", required=True, help="the npuopt binary")
    ap.add_argument("--skip-others", action="store_true", help="no onnxsim / onnxslim rows")
    ap.add_argument("models", nargs="+")
    a = ap.parse_args()
    for model in a.models:
        size = os.path.getsize(model)
        print(f"\n{os.path.basename(model)} ({mib(size).strip()})")
        c = cli_run(a.cli, model)
        if "error" in c:
            print(f"  cli                error: {c['error']}")
        else:
            print(f"  cli                wall {c['wall_s']:6.2f} s (cpu {c['cpu_s']:.2f} s)  peak RSS {mib(c['peak'])}")
        for which in ["npuopt"] + ([] if a.skip_others else ["onnxsim", "onnxslim"]):
            r = py_run(which, model)
            if "error" in r:
                print(f"  {which:<18} error: {r['error']}")
                continue
            extra = ""
            if which == "npuopt" and "error" not in c:
                extra = (f"  call/cli wall {r['call_s'] / c['wall_s']:.2f}x, cpu {r['cpu_s'] / c['cpu_s']:.2f}x;"
                         f" call adds {mib(r['peak'] - r['base']).strip()}"
                         f" ({(r['peak'] - r['base']) / size:.2f} model sizes)"
                         f" vs cli peak {mib(c['peak']).strip()}")
            print(f"  {which + '(onnx.load)':<18} call {r['call_s']:6.2f} s (cpu {r['cpu_s']:.2f} s, load {r['load_s']:.2f} s)"
                  f"  peak RSS {mib(r['peak'])} (before call {mib(r['base']).strip()}){extra}")


if __name__ == "__main__":
    main()
