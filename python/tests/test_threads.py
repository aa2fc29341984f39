"""Two optimizations at once, from two Python threads."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import npuopt
from conftest import run_python


def test_two_optimizations_in_parallel_threads_match_sequential_runs(
    mobileone: Path, repvgg: Path
) -> None:
    models = [mobileone.read_bytes(), repvgg.read_bytes()] * 2
    expected = [npuopt.optimize(m, target="edgetpu").bytes for m in models]
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda m: npuopt.optimize(m, target="edgetpu"), models))
    assert [r.bytes for r in results] == expected
    assert all(r.verification["passed"] for r in results)


def test_the_gil_is_released_while_npuopt_works(mobileone: Path, tmp_path: Path) -> None:
    # npuopt reads the model from a named pipe that a Python thread fills
    # while npuopt waits for it: that thread can only run if npuopt let go
    # of the GIL. Were it held, both would wait for ever: the subprocess
    # and its time limit turn that into a failure instead of a hang.
    code = f"""
import os, threading, npuopt
fifo = {str(tmp_path / "model.fifo")!r}
os.mkfifo(fifo)
data = open({str(mobileone)!r}, "rb").read()
def feed():
    with open(fifo, "wb") as f:
        f.write(data)
threading.Thread(target=feed).start()
r = npuopt.optimize(fifo)
print(r.report["totals"]["nodes"]["after"], r.verification["passed"])
"""
    done = run_python(code, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[1] == "True"
