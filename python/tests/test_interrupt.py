"""Ctrl-C during a long run: KeyboardInterrupt, nothing written, and the
package still works after it.

The runs here would take days (a billion verification samples): only the
interrupt can end them, so a subprocess that returns at all proves the run
stopped; its time limit turns a run that did not stop into a failure."""

from __future__ import annotations

from pathlib import Path

from conftest import run_python

INTERRUPT_DURING = """
import os, signal, sys, threading, npuopt
src, dst = sys.argv[1], sys.argv[2]
threading.Timer(1.0, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
try:
    {call}
    print("finished")
except KeyboardInterrupt:
    print("interrupted")
print("written" if os.path.exists(dst) else "nothing written")
print(sorted(os.listdir(os.path.dirname(dst))))
again = npuopt.optimize(src, verify=False)
print("works again:", again.report["totals"]["nodes"]["after"] > 0)
"""


def interrupted(call: str, src: Path, dst: Path) -> list:
    done = run_python(INTERRUPT_DURING.format(call=call), str(src), str(dst), timeout=600)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_ctrl_c_stops_optimize_file_and_writes_nothing(mobileone: Path, tmp_path: Path) -> None:
    out = interrupted("npuopt.optimize_file(src, dst, samples=10**9)", mobileone, tmp_path / "out.onnx")
    assert out == ["interrupted", "nothing written", "[]", "works again: True"]


def test_ctrl_c_stops_optimize_in_memory(mobileone: Path, tmp_path: Path) -> None:
    out = interrupted("npuopt.optimize(open(src, 'rb').read(), samples=10**9)", mobileone, tmp_path / "x")
    assert out[0] == "interrupted" and out[-1] == "works again: True"


def test_ctrl_c_stops_verify(mobileone: Path, tmp_path: Path) -> None:
    out = interrupted("npuopt.verify(src, src, samples=10**9)", mobileone, tmp_path / "x")
    assert out[0] == "interrupted" and out[-1] == "works again: True"
