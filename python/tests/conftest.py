"""Shared fixtures of the Python tests: the repository's committed models."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
REAL = REPO / "fixtures" / "real"


@pytest.fixture
def mobileone() -> Path:
    """MobileOne's training graph (TorchScript export, reduced width)."""
    return REAL / "mobileone_ts.onnx"


@pytest.fixture
def repvgg() -> Path:
    return REAL / "repvgg_ts.onnx"


@pytest.fixture
def mobilenetv2() -> Path:
    return REAL / "mobilenetv2_ts.onnx"


def run_python(code: str, *args: str, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    """Runs `code` in a fresh interpreter of this environment."""
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        **kw,
    )
