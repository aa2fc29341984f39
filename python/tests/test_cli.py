"""`python -m npuopt` and the `npuopt` script: the command line itself,
with its output and exit codes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import onnx

import npuopt
from conftest import REPO
from test_errors import two_adds


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "npuopt", *args],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )


def test_success_is_0_and_prints_what_the_command_prints(repvgg: Path, tmp_path: Path) -> None:
    done = cli("passes")
    assert done.returncode == 0
    assert "fold-batchnorm" in done.stdout
    done = cli("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"npuopt {npuopt.__version__}"
    out = tmp_path / "out.onnx"
    done = cli("optimize", str(repvgg), "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert "verified with tract" in done.stderr
    assert out.read_bytes() == npuopt.optimize(repvgg).bytes
    done = cli("inspect", str(out), "--json")
    assert done.returncode == 0
    assert json.loads(done.stdout) == npuopt.inspect(out).summary


def test_usage_errors_are_2() -> None:
    assert cli().returncode == 2
    done = cli("frobnicate")
    assert done.returncode == 2 and "frobnicate" in done.stderr
    assert cli("optimize", "--no-such-flag").returncode == 2
    done = cli("optimize", "in.onnx", "-o", "out.onnx", "--passes", "no-such-pass")
    assert done.returncode == 2 and "no-such-pass" in done.stderr


def test_bad_input_is_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07not a model")
    done = cli("optimize", str(bad), "-o", str(tmp_path / "out.onnx"))
    assert done.returncode == 1
    assert done.stderr.startswith("error:")
    assert not (tmp_path / "out.onnx").exists()


def test_a_mismatch_is_3_and_writes_nothing(repvgg: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "a.onnx", tmp_path / "b.onnx"
    onnx.save(two_adds(1.0), str(a))
    onnx.save(two_adds(2.0), str(b))
    done = cli("verify", str(a), str(b))
    assert done.returncode == 3 and "outputs differ" in done.stdout
    out = tmp_path / "out.onnx"
    done = cli("optimize", str(repvgg), "-o", str(out), "--rtol", "0", "--atol", "0")
    assert done.returncode == 3
    assert "nothing was written" in done.stderr
    assert not out.exists()


def test_the_console_script_is_the_same_command() -> None:
    script = Path(sys.executable).parent / "npuopt"
    done = subprocess.run([str(script), "passes", "--json"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    assert json.loads(done.stdout)["passes"] == npuopt.passes()
    assert subprocess.run([str(script), "frobnicate"], capture_output=True, timeout=60).returncode == 2


def test_a_closed_pipe_ends_it_quietly(mobileone: Path) -> None:
    # As the binary does: `python -m npuopt inspect m.onnx --dump | head -1`
    # ends on SIGPIPE (the dump is larger than a pipe's buffer), without a
    # panic or a traceback.
    p = subprocess.Popen(
        [sys.executable, "-m", "npuopt", "inspect", str(mobileone), "--dump"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO,
    )
    assert p.stdout is not None and p.stderr is not None
    assert p.stdout.readline().startswith(b"graph ")
    p.stdout.close()
    err = p.stderr.read().decode()
    assert p.wait(timeout=60) == -signal.SIGPIPE
    assert "panicked" not in err and "Traceback" not in err
