"""The API on committed models: ModelProto round trip, optimize with and
without a target, the report against the command line's, inspect, passes,
targets."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import onnx
import pytest

import npuopt
from conftest import REPO, run_python


def test_modelproto_round_trip_is_byte_for_byte(mobilenetv2: Path) -> None:
    proto = onnx.load(str(mobilenetv2))
    r = npuopt.optimize(proto, passes=[], verify=False)
    # No pass ran: the model comes back exactly as it went in.
    assert r.bytes == mobilenetv2.read_bytes()
    assert r.bytes == proto.SerializeToString()
    assert isinstance(r.model, onnx.ModelProto)
    assert r.model == proto
    assert r.report["passes"] == []
    assert r.verification is None


def test_optimize_collapses_mobileone_and_verifies(mobileone: Path) -> None:
    r = npuopt.optimize(onnx.load(str(mobileone)))
    nodes = r.report["totals"]["nodes"]
    assert nodes["after"] < nodes["before"]
    assert r.verification is not None and r.verification["passed"]
    assert all(o["passed"] for o in r.verification["outputs"])
    assert r.report["target"] is None and r.report["decisions"] == []
    # The result is a valid ONNX model with the input's interface.
    onnx.checker.check_model(r.model)
    assert [i.name for i in r.model.graph.input] == [
        i.name for i in onnx.load(str(mobileone)).graph.input
    ]
    before = sum(1 for n in onnx.load(str(mobileone)).graph.node if n.op_type == "BatchNormalization")
    after = sum(1 for n in r.model.graph.node if n.op_type == "BatchNormalization")
    assert before > 0 and after == 0


def test_optimize_with_a_target_reports_estimates_and_decisions(mobilenetv2: Path) -> None:
    r = npuopt.optimize(mobilenetv2, target="axera-m55h", intent="capacity")
    t = r.report["target"]
    assert t["name"] == "axera-m55h" and t["intent"] == "capacity"
    assert t["estimate"]["after"]["total_cycles"] <= t["capacity_budget_cycles"]
    assert r.report["decisions"], "a capacity run on MobileNetV2 decides something"
    for d in r.report["decisions"]:
        assert {"pass", "rule", "node", "applied", "estimated_cycles", "reason"} <= d.keys()
    meta = {p.key: p.value for p in r.model.metadata_props}
    assert meta["npuopt.intent"] == "capacity"
    assert r.verification["passed"]


def test_the_report_is_the_command_lines_report(tmp_path: Path, repvgg: Path) -> None:
    cli_out, cli_report = tmp_path / "cli.onnx", tmp_path / "cli.json"
    done = run_python(
        "import sys, npuopt.__main__ as m; sys.exit(m.main())",
        "optimize", str(repvgg), "-o", str(cli_out), "--target", "ethos-u55-256",
        "--report", str(cli_report), "-q",
    )
    assert done.returncode == 0, done.stderr
    expected = json.loads(cli_report.read_text())

    from_file = npuopt.optimize_file(repvgg, tmp_path / "py.onnx", target="ethos-u55-256")
    assert from_file.path == str(tmp_path / "py.onnx")
    assert from_file.bytes == cli_out.read_bytes()
    assert from_file.report == {**expected, "output": {**expected["output"], "path": str(tmp_path / "py.onnx")}}

    # In memory: the same report, with no path for what has none.
    in_memory = npuopt.optimize(repvgg, target="ethos-u55-256")
    assert in_memory.bytes == cli_out.read_bytes()
    assert in_memory.report == {**expected, "output": {**expected["output"], "path": None}}
    as_bytes = npuopt.optimize(repvgg.read_bytes(), target="ethos-u55-256")
    assert as_bytes.report == {
        **expected,
        "input": {**expected["input"], "path": None},
        "output": {**expected["output"], "path": None},
    }
    assert as_bytes.report["tool"]["version"] == npuopt.__version__


def test_options_reach_the_run(repvgg: Path) -> None:
    r = npuopt.optimize(repvgg, passes=["fold-batchnorm"], seed=7, samples=2, rtol=1e-3, atol=1e-5)
    assert [p["pass"] for p in r.report["passes"]] == ["fold-batchnorm"]
    assert r.verification["seed"] == 7 and r.verification["samples"] == 2
    r = npuopt.optimize(repvgg, skip=["merge-branches"], max_rewrites=3, verify=False)
    assert "merge-branches" not in [p["pass"] for p in r.report["passes"]]
    assert sum(p["rewrites"] for p in r.report["passes"]) == 3
    assert r.report["hit_rewrite_cap"] is True


def test_inspect_rows_with_and_without_a_target(mobilenetv2: Path) -> None:
    plain = npuopt.inspect(mobilenetv2)
    assert plain.estimate is None
    assert plain.summary["nodes"] == len(plain.nodes) == len(onnx.load(str(mobilenetv2)).graph.node)
    assert plain.layers is plain.nodes
    convs = [n for n in plain.nodes if n["op"] == "Conv"]
    assert convs and all(n["macs"] > 0 for n in convs)
    assert sum(n["macs"] or 0 for n in plain.nodes) == plain.summary["macs"]

    costed = npuopt.inspect(mobilenetv2.read_bytes(), target="ethos-u55-256")
    assert costed.estimate["target"] == "ethos-u55-256"
    rows = costed.layers
    assert rows and {"name", "op", "macs", "executed_macs", "cycles", "utilization", "bound", "supported", "unsized"} == rows[0].keys()
    assert sum(r["cycles"] for r in rows) <= costed.estimate["total_cycles"]
    assert costed.summary == plain.summary


def test_passes_and_targets_list_what_the_cli_lists() -> None:
    names = [p["name"] for p in npuopt.passes()]
    assert {"fold-batchnorm", "merge-branches", "pad-channels"} <= set(names)
    assert all(p["needs_target"] for p in npuopt.passes() if p["name"] == "pad-channels")
    targets = [t["name"] for t in npuopt.targets()]
    assert {"ethos-u55-256", "edgetpu", "hexagon-htp", "axera-m55h", "cpu-generic"} <= set(targets)
    cli = run_python("import sys, npuopt.__main__ as m; sys.exit(m.main())", "passes", "--json")
    assert cli.returncode == 0
    assert json.loads(cli.stdout)["passes"] == npuopt.passes()


def test_readme_from_python_example_runs(tmp_path: Path) -> None:
    """The README's "From Python" example, as written."""
    text = (REPO / "README.md").read_text()
    section = text[text.index("## From Python"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    done = run_python(code)
    assert done.returncode == 0, done.stderr


def test_docstring_examples_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every example in the package's docstrings, as written (they use the
    repository's committed models)."""
    import doctest

    monkeypatch.chdir(REPO)
    result = doctest.testmod(npuopt, extraglobs={"npuopt": npuopt})
    assert result.attempted > 10 and result.failed == 0
