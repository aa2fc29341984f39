#!/usr/bin/env python3
"""Times npuopt's default pipeline (no verification) against onnxslim and
onnxsim on the same full-size exports, in the same run, and prints the
ratios of wall time and peak memory; then npuopt's plain round trip
(`--passes none`) in GB/s of file, with the fsync the command does and
without it, and peak RSS over the file's size. A benchmark, not a test: it
never fails on a slow machine.

    python3 bench/compare_simplifiers.py [--runs N] [MODEL.onnx ...]

Defaults to bench/models/{mobileone_s0,repvgg_a0,resnet18}_ts.onnx (made by
bench/make_zoo.py). npuopt is the release build of the command itself
(`npuopt -q optimize IN -o OUT --no-verify`, what a user runs; built with
cargo build --release if missing); the no-fsync round trip is the bench
binary `roundtrip` (same import and export, WriteOptions::skip_sync).
The command fsyncs its output (durability) and onnxslim, onnxsim and cp
do not, so the same run also times the default pipeline without the
fsync (the bench binary `pipeline --no-sync`: the command's work less its
before/after summaries, a whole process like the others) against
onnxslim and cp, and `cp` followed by an fsync of the copy (os.fsync)
against the command.
onnxsim and onnxslim run only if installed (on PATH or beside this
Python); `--skip onnxsim` leaves one out. `cp` of the same file to the
same folder is timed too (median of --runs), for the ratio npuopt / cp
(cp does not fsync; npuopt does — the round-trip line gives GB/s with and
without the sync). Wall time and peak RSS come from
GNU time for each process as a whole (interpreter start-up included for
the Python tools, as a user sees it); each figure is the median of --runs
runs (default 3; the Python tools run once unless --runs-python is given).
"""
import os
import statistics
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT = [os.path.join(ROOT, "bench", "models", f"{m}_ts.onnx")
           for m in ("mobileone_s0", "repvgg_a0", "resnet18")]


def timed(cmd):
    """(wall seconds, peak RSS MiB, stdout) of one command: peak RSS from GNU
    time, wall time from a monotonic clock around it (GNU time's own has
    10 ms steps, too coarse for a small model or cp)."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as t:
        start = time.perf_counter()
        out = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", t.name] + cmd,
                             capture_output=True, text=True)
        wall = time.perf_counter() - start
        if out.returncode != 0:
            return None, None, out.stderr.strip().splitlines()[-1:] or ["failed"]
        kib = t.read().split()[-1]
        return wall, int(kib) / 1024.0, out.stdout.strip()


def median_timed(cmd, runs):
    """Median wall and peak RSS of `runs` runs (None if any run failed)."""
    walls, rss = [], []
    for _ in range(runs):
        w, m, _ = timed(cmd)
        if w is None:
            return None, None
        walls.append(w)
        rss.append(m)
    return statistics.median(walls), statistics.median(rss)


def median_cp_fsync(src, dst, runs):
    """Median wall of `cp src dst` (timed like every tool) plus an fsync
    of the copy: the same durability the command gives its output."""
    walls = []
    for _ in range(runs):
        w, _, _ = timed(["cp", src, dst])
        if w is None:
            return None
        start = time.perf_counter()
        fd = os.open(dst, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        walls.append(w + time.perf_counter() - start)
        os.remove(dst)
    return statistics.median(walls)


def node_count(path):
    import onnx
    return len(onnx.load(path, load_external_data=False).graph.node)


def tool(name):
    here = os.path.join(os.path.dirname(sys.executable), name)
    return here if os.path.exists(here) else shutil.which(name)


def release_bin(target_dir, name, package):
    path = os.path.join(target_dir, "release", name)
    if not os.path.exists(path):
        subprocess.run(["cargo", "build", "--release", "-q", "-p", package, "--bin", name],
                       cwd=ROOT, check=True)
    return path


def nosync_gbps(roundtrip, model):
    """The no-fsync round-trip GB/s the `roundtrip` bench prints for `model`."""
    out = subprocess.run([roundtrip, model], capture_output=True, text=True)
    for line in out.stdout.splitlines()[1:]:
        cols = line.split()
        if len(cols) >= 9:
            return float(cols[6])
    return None


def main():
    args = sys.argv[1:]
    runs, runs_py, skip = 3, 1, set()
    while args and args[0] in ("--runs", "--runs-python", "--skip"):
        flag, value = args[0], args[1]
        if flag == "--runs":
            runs = int(value)
        elif flag == "--runs-python":
            runs_py = int(value)
        else:
            skip.add(value)
        args = args[2:]
    models = args or DEFAULT
    target_dir = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    npuopt = release_bin(target_dir, "npuopt", "npuopt")
    roundtrip = release_bin(target_dir, "roundtrip", "npuopt-bench")
    pipeline = release_bin(target_dir, "pipeline", "npuopt-bench")
    tools = [("npuopt", runs, lambda i, o: [npuopt, "-q", "optimize", i, "-o", o, "--no-verify"])]
    for name in ("onnxslim", "onnxsim"):
        exe = tool(name)
        if exe and name not in skip:
            tools.append((name, runs_py, lambda i, o, exe=exe: [exe, i, o]))
    print(f"{'model':<34} {'MiB':>6} {'tool':<9} {'nodes':>12} {'wall s':>7} {'peak MiB':>9} {'RSS/file':>8}")
    summary = []
    for model in models:
        base = os.path.basename(model)
        if not os.path.exists(model):
            print(f"{base}: missing (run bench/make_zoo.py)")
            continue
        size = os.path.getsize(model) / 2**20
        results = {}
        with tempfile.TemporaryDirectory() as d:
            for name, n, cmd in tools:
                out = os.path.join(d, f"{name}.onnx")
                wall, rss = median_timed(cmd(model, out), n)
                if wall is None:
                    print(f"{base:<34} {size:>6.1f} {name:<9} failed")
                    continue
                nodes = f"{node_count(model)}→{node_count(out)}"
                results[name] = (wall, rss)
                print(f"{base:<34} {size:>6.1f} {name:<9} {nodes:>12} {wall:>7.2f} {rss:>9.1f} {rss / size:>8.2f}")
            # The plain round trip: the command with --passes none (fsync
            # included), and the bench's import + export without the fsync.
            out = os.path.join(d, "none.onnx")
            wall, rss = median_timed([npuopt, "-q", "optimize", model, "-o", out,
                                      "--no-verify", "--passes", "none"], runs)
            cp_wall, _ = median_timed(["cp", model, os.path.join(d, "cp.onnx")], runs)
            cp_sync = median_cp_fsync(model, os.path.join(d, "cpsync.onnx"), runs)
            # The default pipeline without the fsync (the bench binary).
            nosync_wall, _ = median_timed([pipeline, "--no-sync", "-q", model,
                                           os.path.join(d, "nosync.onnx")], runs)
        ratio = {}
        if "npuopt" in results:
            w0, m0 = results["npuopt"]
            for name, (w, m) in results.items():
                if name != "npuopt":
                    ratio[name] = w / max(w0, 1e-3)
                    print(f"{'':<34} {'':>6} npuopt vs {name}: {ratio[name]:.1f}× faster, {m / m0:.1f}× less memory")
        nosync = nosync_gbps(roundtrip, model)
        cp_ratio = None
        if "npuopt" in results and cp_wall:
            cp_ratio = results["npuopt"][0] / max(cp_wall, 1e-3)
            print(f"{'':<34} {'':>6} cp {cp_wall:.3f} s: npuopt takes {cp_ratio:.1f}× cp")
        sync_ratio = None
        if "npuopt" in results and cp_sync:
            sync_ratio = results["npuopt"][0] / max(cp_sync, 1e-3)
            print(f"{'':<34} {'':>6} cp + fsync {cp_sync:.3f} s: npuopt takes {sync_ratio:.1f}× cp + fsync")
        nosync_slim = nosync_cp = None
        if nosync_wall is not None:
            parts = []
            if "onnxslim" in results:
                nosync_slim = results["onnxslim"][0] / max(nosync_wall, 1e-3)
                parts.append(f"{nosync_slim:.1f}× faster than onnxslim")
            if cp_wall:
                nosync_cp = nosync_wall / max(cp_wall, 1e-3)
                parts.append(f"{nosync_cp:.1f}× cp")
            print(f"{'':<34} {'':>6} default pipeline without fsync {nosync_wall:.3f} s: "
                  + ", ".join(parts))
        if wall is not None:
            gbps = size * 2**20 / wall / 1e9
            print(f"{'':<34} {'':>6} round trip (--passes none): {gbps:.2f} GB/s with fsync, "
                  f"{nosync if nosync is not None else float('nan'):.2f} GB/s without, "
                  f"peak {rss:.1f} MiB = {rss / size:.2f}× the file")
        summary.append((base, size, results.get("npuopt"), ratio.get("onnxslim"),
                        ratio.get("onnxsim"), cp_ratio, sync_ratio, nosync_wall,
                        nosync_slim, nosync_cp))
    if summary:
        print()
        print(f"{'model':<34} {'MiB':>6} {'npuopt s':>9} {'RSS/file':>8} {'×onnxslim':>10} "
              f"{'×onnxsim':>9} {'÷cp':>6} {'÷cp+sync':>8} {'nosync s':>8} "
              f"{'×onnxslim':>10} {'÷cp':>6}")
        print(f"{'':<34} {'':>6} {'(the command, with fsync)':<53} "
              f"{'(bench pipeline --no-sync)':<26}")
        for base, size, r, slim, sim, cp, cps, ns, ns_slim, ns_cp in summary:
            fmt = lambda x: f"{x:.1f}" if x is not None else "—"
            print(f"{base:<34} {size:>6.1f} {r[0] if r else float('nan'):>9.2f} "
                  f"{(r[1] / size) if r else float('nan'):>8.2f} {fmt(slim):>10} {fmt(sim):>9} "
                  f"{fmt(cp):>6} {fmt(cps):>8} {ns if ns is not None else float('nan'):>8.2f} "
                  f"{fmt(ns_slim):>10} {fmt(ns_cp):>6}")


if __name__ == "__main__":
    main()
