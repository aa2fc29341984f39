"""npuopt: an ONNX graph optimizer for NPUs, from Python.

npuopt rewrites an ONNX model exactly — BN folding, structural
re-parameterization, conv merging and, for a named NPU target, the
rewrites its cost model accepts — and checks the result numerically
against the input with tract. This package runs the same Rust code as the
``npuopt`` command, in-process: models go in and out as ``onnx.ModelProto``,
``bytes`` or paths, reports come back as dicts, errors as exceptions.

Example::

    import onnx
    import npuopt

    result = npuopt.optimize(onnx.load("model.onnx"), target="ethos-u55-256")
    print(result.report["totals"]["nodes"])      # {'after': ..., 'before': ...}
    print(result.verification["outputs"][0]["max_abs_err"])
    onnx.save(result.model, "model.opt.onnx")

``onnx`` is needed only for ``ModelProto`` in and out: ``bytes`` and paths
work without it. The GIL is released while npuopt works, and Ctrl-C
(``KeyboardInterrupt``) stops a run cleanly. ``python -m npuopt`` is the
command line itself.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from . import _npuopt
from ._errors import (
    InternalError,
    InvalidModelError,
    NpuoptError,
    UsageError,
    VerificationError,
)

if TYPE_CHECKING:  # onnx is imported only when a ModelProto is asked for
    import onnx

__version__: str = _npuopt.__version__

__all__ = [
    "optimize",
    "optimize_file",
    "verify",
    "inspect",
    "passes",
    "targets",
    "Result",
    "Inspection",
    "NpuoptError",
    "InvalidModelError",
    "UsageError",
    "VerificationError",
    "InternalError",
]

#: A model: an ``onnx.ModelProto``, its encoded ``bytes``, or a path.
ModelLike = Union["onnx.ModelProto", bytes, bytearray, memoryview, str, "os.PathLike[str]"]
PathLike = Union[str, "os.PathLike[str]"]


class Result:
    """An optimized model and the report of what was done to it.

    Attributes:
        report: the JSON report, exactly as ``npuopt optimize --report``
            writes it, as dicts and lists: ``tool``, ``input``, ``output``,
            ``totals`` (``nodes``, ``parameters``, ``macs``, ``file_bytes``,
            each ``before``/``after``), ``passes``, ``changes``, ``skipped``,
            ``verification``, ``target``, ``decisions``, ...
        path: where the model was written (:func:`optimize_file`), or
            ``None`` for a model in memory (:func:`optimize`).
    """

    def __init__(self, report: Dict[str, Any], data: Optional[bytes] = None,
                 path: Optional[str] = None) -> None:
        self.report = report
        self.path = path
        self._bytes = data
        self._model: Optional["onnx.ModelProto"] = None

    @property
    def bytes(self) -> bytes:
        """The optimized model, encoded (for :func:`optimize_file`, the
        written file; its external data, if any, is beside it)."""
        if self._bytes is None:
            assert self.path is not None
            with open(self.path, "rb") as f:
                self._bytes = f.read()
        return self._bytes

    @property
    def model(self) -> "onnx.ModelProto":
        """The optimized model as an ``onnx.ModelProto``, parsed from the
        written bytes on first use (needs ``onnx``)."""
        if self._model is None:
            import onnx

            if self.path is not None:
                self._model = onnx.load(self.path)
            else:
                self._model = onnx.ModelProto.FromString(self.bytes)
        return self._model

    @property
    def verification(self) -> Optional[Dict[str, Any]]:
        """The verification figures (``report["verification"]``); ``None``
        with ``verify=False``, or when it could not run and
        ``allow_unverified`` was given (see :attr:`unverified`)."""
        return self.report["verification"]

    @property
    def unverified(self) -> Optional[str]:
        """``"NOT VERIFIED: <reason>"`` when ``allow_unverified`` let the
        run finish without the verification it could not carry out
        (``report["unverified"]``); ``None`` otherwise."""
        return self.report.get("unverified")

    def __repr__(self) -> str:
        nodes = self.report["totals"]["nodes"]
        v = self.verification
        if self.unverified is not None:
            verified = "NOT VERIFIED"
        else:
            verified = "not verified" if v is None else ("verified" if v["passed"] else "MISMATCH")
        where = f" at {self.path!r}" if self.path else ""
        return f"<npuopt.Result{where}: nodes {nodes['before']} -> {nodes['after']}, {verified}>"


class Inspection:
    """What :func:`inspect` found.

    Attributes:
        summary: ``npuopt inspect --json``: producer, opsets, inputs, outputs,
            node and op counts, parameters, MACs, the largest layers.
        estimate: with a target, ``npuopt inspect --target T --json``: the
            total estimated cycles and latency, per-layer estimates and the
            flagged losses; ``None`` without a target.
        nodes: one row per node in graph order: ``name``, ``op``,
            ``domain``, ``macs`` (useful) and ``dense_macs`` (``None`` where
            shapes are unknown).
    """

    def __init__(self, summary: Dict[str, Any], estimate: Optional[Dict[str, Any]],
                 nodes: List[Dict[str, Any]]) -> None:
        self.summary = summary
        self.estimate = estimate
        self.nodes = nodes

    @property
    def layers(self) -> List[Dict[str, Any]]:
        """Per-layer rows, ready for ``pandas.DataFrame(rows)``: with a
        target, the estimate's layers (``name``, ``op``, ``macs``,
        ``executed_macs``, ``cycles``, ``utilization``, ``bound``,
        ``supported``); without one, :attr:`nodes`."""
        return self.estimate["layers"] if self.estimate is not None else self.nodes

    def __repr__(self) -> str:
        s = self.summary
        extra = ""
        if self.estimate is not None:
            e = self.estimate
            extra = f", {e['target']}: est. {e['latency_ms']:.3f} ms"
        return f"<npuopt.Inspection: {s['nodes']} nodes, {s['macs']} MACs{extra}>"


def optimize(
    model: ModelLike,
    *,
    target: Optional[PathLike] = None,
    intent: str = "deploy",
    passes: Optional[Union[str, Sequence[str]]] = None,
    skip: Optional[Union[str, Sequence[str]]] = None,
    force_passes: Sequence[str] = (),
    verify: bool = True,
    verify_each: bool = False,
    allow_unverified: bool = False,
    max_rewrites: Optional[int] = None,
    input_shapes: Optional[Mapping[str, Sequence[int]]] = None,
    input_range: Optional[Tuple[float, float]] = None,
    seed: Optional[int] = None,
    samples: Optional[int] = None,
    rtol: Optional[float] = None,
    atol: Optional[float] = None,
    base_dir: Optional[PathLike] = None,
) -> Result:
    """Optimizes a model and returns it with the report.

    The same run as ``npuopt optimize``; each keyword is the flag of the
    same name, and ``None`` means the command line's default.

    Args:
        model: an ``onnx.ModelProto``, the encoded model as ``bytes``
            (shared with Rust, not copied), or a path.
        target: a built-in NPU target (see :func:`targets`) or a path to a
            target ``.toml``: adds the hardware passes, gated by its cost
            model (``--target``).
        intent: ``"deploy"`` (minimise the estimated latency) or
            ``"capacity"`` (add exact, trainable capacity within the
            input's latency; needs a target).
        passes: the passes to run, in order (``[]`` runs none); ``None``
            runs the default pipeline (see :func:`passes`).
        skip: passes to leave out of the pipeline.
        force_passes: passes whose hardware rewrites are applied whatever
            the cost model says.
        verify: check the result against the input with tract (default);
            on a mismatch :class:`VerificationError` is raised.
        verify_each: verify after every pass that changed the graph, and
            name the first pass and rewrite that breaks numerics.
        allow_unverified: when verification cannot run (tract cannot load
            or run a model, or an input has a symbolic dim without a
            shape), return the result anyway, marked: :attr:`Result.unverified`
            and ``report["unverified"]`` say ``"NOT VERIFIED: <reason>"``,
            and so does the model's ``npuopt.verification`` metadata
            (``--allow-unverified``). A mismatch still raises
            :class:`VerificationError`.
        max_rewrites: stop after this many rewrites in total.
        input_shapes: shapes for inputs with symbolic dims, e.g.
            ``{"images": (1, 3, 640, 640)}``.
        input_range: ``(lo, hi)`` of integer inputs (default ``(0, 10)``).
        seed: seed of the random inputs (default 0).
        samples: number of random input sets (default 1).
        rtol: a fixed relative tolerance instead of the noise verdict
            (by default an output passes when its error against an f64
            evaluation of the input is at most 8 times the input model's
            own): with ``rtol`` or ``atol`` given, outputs pass when
            ``max|a-b| <= atol + rtol * max|ref|`` (the other defaulting to
            1e-4 resp. 1e-6).
        atol: a fixed absolute tolerance (see ``rtol``).
        base_dir: for a model in memory with external data, the folder its
            data files are in (a model file's are beside it).

    Returns:
        A :class:`Result`: ``.model`` (``onnx.ModelProto``), ``.bytes``,
        ``.report`` (the JSON report as dicts) and ``.verification``.

    Raises:
        InvalidModelError: the model cannot be read or is invalid, or tract
            cannot run it.
        UsageError: an unknown pass, intent or target, or a bad value.
        VerificationError: the result does not match the input; it carries
            the figures.
        KeyboardInterrupt: Ctrl-C; the run stopped at its next check.

    Example (from the repository's folder)::

        >>> import npuopt
        >>> r = npuopt.optimize("fixtures/real/mobileone_ts.onnx")
        >>> r.report["totals"]["nodes"]
        {'after': 89, 'before': 704}
        >>> r.verification["passed"]
        True
        >>> r = npuopt.optimize(r.model, target="ethos-u55-256", samples=2)
        >>> r.report["target"]["estimate"]["after"]["latency_ms"] < 0.1
        True
    """
    flags = _optimize_flags(
        target=target, intent=intent, passes=passes, skip=skip, force_passes=force_passes,
        verify=verify, verify_each=verify_each, allow_unverified=allow_unverified,
        max_rewrites=max_rewrites,
        input_shapes=input_shapes, input_range=input_range, seed=seed, samples=samples,
        rtol=rtol, atol=atol,
    )
    data, report = _npuopt.optimize(_model_arg(model), flags, _opt_path(base_dir))
    return Result(report, data=data)


def optimize_file(
    src: ModelLike,
    dst: PathLike,
    *,
    force: bool = False,
    external_data: bool = False,
    report_html: Optional[PathLike] = None,
    target: Optional[PathLike] = None,
    intent: str = "deploy",
    passes: Optional[Union[str, Sequence[str]]] = None,
    skip: Optional[Union[str, Sequence[str]]] = None,
    force_passes: Sequence[str] = (),
    verify: bool = True,
    verify_each: bool = False,
    allow_unverified: bool = False,
    max_rewrites: Optional[int] = None,
    input_shapes: Optional[Mapping[str, Sequence[int]]] = None,
    input_range: Optional[Tuple[float, float]] = None,
    seed: Optional[int] = None,
    samples: Optional[int] = None,
    rtol: Optional[float] = None,
    atol: Optional[float] = None,
    base_dir: Optional[PathLike] = None,
) -> Result:
    """Optimizes ``src`` into the file ``dst``, as ``npuopt optimize SRC -o
    DST`` does: written atomically (a temporary file renamed into place, so
    ``dst`` never holds a partial model), nothing written on a mismatch.

    Takes :func:`optimize`'s keywords, and:

    Args:
        force: allow ``dst`` to be the input file.
        external_data: write tensors of 1 KiB or more to ``DST.data``
            beside the model (models over protobuf's 2 GiB limit are
            written that way anyway).
        report_html: also write the self-contained HTML report here.

    Returns:
        A :class:`Result` whose ``.path`` is ``dst``; its ``.report`` is
        what ``--report`` would write.

    Example::

        >>> import os, tempfile
        >>> out = os.path.join(tempfile.mkdtemp(), "mobileone.opt.onnx")
        >>> r = npuopt.optimize_file("fixtures/real/mobileone_ts.onnx", out,
        ...                          target="axera-m55h", report_html=out + ".html")
        >>> r.report["output"]["bytes"] == os.path.getsize(out)
        True
    """
    flags = _optimize_flags(
        target=target, intent=intent, passes=passes, skip=skip, force_passes=force_passes,
        verify=verify, verify_each=verify_each, allow_unverified=allow_unverified,
        max_rewrites=max_rewrites,
        input_shapes=input_shapes, input_range=input_range, seed=seed, samples=samples,
        rtol=rtol, atol=atol,
    )
    if force:
        flags.append("--force")
    if external_data:
        flags.append("--external-data")
    if report_html is not None:
        flags += ["--report-html", os.fspath(report_html)]
    out = os.fspath(dst)
    report = _npuopt.optimize_file(_model_arg(src), out, flags, _opt_path(base_dir))
    return Result(report, path=out)


def verify(
    reference: ModelLike,
    candidate: ModelLike,
    *,
    input_shapes: Optional[Mapping[str, Sequence[int]]] = None,
    input_range: Optional[Tuple[float, float]] = None,
    seed: Optional[int] = None,
    samples: Optional[int] = None,
    rtol: Optional[float] = None,
    atol: Optional[float] = None,
) -> Dict[str, Any]:
    """Compares two models with tract on the same seeded random inputs, as
    ``npuopt verify`` does (the keywords are :func:`optimize`'s).

    A model with external data must be passed as a path (its data is read
    from its folder).

    Returns:
        The figures, as ``npuopt verify --json`` prints them: ``passed``,
        ``seed``, ``samples``, ``reference``, ``noise_factor``, ``notes``,
        ``intermediates`` and per output ``name``, ``shape``,
        ``max_abs_err``, ``max_rel_err``, ``cosine``, ``max_abs_ref``,
        ``err_vs_reference``, ``noise_floor``, ``ratio``, ``tolerance``,
        ``verdict``, ``compared_as``, ``passed``.

    Raises:
        VerificationError: the outputs differ (the figures are on it).
        InvalidModelError: a model cannot be read, or tract cannot run it.

    Example::

        >>> r = npuopt.optimize("fixtures/real/repvgg_ts.onnx", verify=False)
        >>> npuopt.verify("fixtures/real/repvgg_ts.onnx", r.bytes, samples=4)["passed"]
        True
    """
    flags = _check_flags(input_shapes, input_range, seed, samples, rtol, atol)
    return _npuopt.verify(_model_arg(reference), _model_arg(candidate), flags)


def inspect(
    model: ModelLike,
    target: Optional[PathLike] = None,
    *,
    base_dir: Optional[PathLike] = None,
) -> Inspection:
    """Summarizes a model, as ``npuopt inspect`` does; with a target, its
    estimated cost per layer on that NPU (estimates of an analytic cost
    model, not measurements).

    Example::

        >>> i = npuopt.inspect("fixtures/real/mobileone_ts.onnx", target="ethos-u55-256")
        >>> i
        <npuopt.Inspection: 704 nodes, 1076032 MACs, ethos-u55-256: est. 0.575 ms>
        >>> max(i.layers, key=lambda row: row["cycles"])["name"]
        '/stem/conv_kxk.0/conv/Conv'
        >>> import pandas; df = pandas.DataFrame(i.layers)  # doctest: +SKIP
    """
    tgt = None if target is None else os.fspath(target)
    summary, estimate, nodes = _npuopt.inspect(_model_arg(model), tgt, _opt_path(base_dir))
    return Inspection(summary, estimate, nodes)


def passes() -> List[Dict[str, Any]]:
    """The rewrite passes, as ``npuopt passes --json`` lists them: ``name``,
    ``description``, ``default`` (in the default pipeline) and
    ``needs_target``.

    Example::

        >>> [p["name"] for p in npuopt.passes() if p["default"]][:2]
        ['fold-constants', 'eliminate-identity']
    """
    return _npuopt.passes()


def targets() -> List[Dict[str, Any]]:
    """The built-in NPU targets, as ``npuopt targets --json`` lists them:
    ``name``, ``clock_mhz``, ``cores``, ``macs_per_cycle``,
    ``peak_macs_per_cycle``, ``source``.

    Example::

        >>> "ethos-u55-256" in [t["name"] for t in npuopt.targets()]
        True
    """
    return _npuopt.targets()


# ------------------------------------------------------------------ helpers


def _model_arg(model: ModelLike) -> Union[bytes, str]:
    """``bytes`` or a path for the Rust side; a ModelProto is serialized
    (without importing onnx here)."""
    if isinstance(model, bytes):
        return model
    if isinstance(model, (bytearray, memoryview)):
        return bytes(model)
    if isinstance(model, (str, os.PathLike)):
        return os.fspath(model)
    serialize = getattr(model, "SerializeToString", None)
    if serialize is not None:
        return serialize()
    raise TypeError(
        f"expected an onnx.ModelProto, bytes or a path, got {type(model).__name__}"
    )


def _opt_path(p: Optional[PathLike]) -> Optional[str]:
    return None if p is None else os.fspath(p)


def _names(flag: str, value: Union[str, Sequence[str]], empty: Optional[str]) -> List[str]:
    if isinstance(value, str):
        return [flag, value]
    names = list(value)
    if not names:
        return [] if empty is None else [flag, empty]
    return [flag, ",".join(names)]


def _check_flags(
    input_shapes: Optional[Mapping[str, Sequence[int]]],
    input_range: Optional[Tuple[float, float]],
    seed: Optional[int],
    samples: Optional[int],
    rtol: Optional[float],
    atol: Optional[float],
) -> List[str]:
    """The verification flags (``CheckArgs``) for these keywords."""
    flags: List[str] = []
    for name, dims in (input_shapes or {}).items():
        flags += ["--input-shape", f"{name}={','.join(str(int(d)) for d in dims)}"]
    if input_range is not None:
        lo, hi = input_range
        flags += ["--input-range", f"{float(lo)!r},{float(hi)!r}"]
    for flag, value in (("--seed", seed), ("--samples", samples)):
        if value is not None:
            flags += [flag, str(int(value))]
    for flag, value in (("--rtol", rtol), ("--atol", atol)):
        if value is not None:
            flags += [flag, repr(float(value))]
    return flags


def _optimize_flags(
    *,
    target: Optional[PathLike],
    intent: str,
    passes: Optional[Union[str, Sequence[str]]],
    skip: Optional[Union[str, Sequence[str]]],
    force_passes: Sequence[str],
    verify: bool,
    verify_each: bool,
    allow_unverified: bool,
    max_rewrites: Optional[int],
    input_shapes: Optional[Mapping[str, Sequence[int]]],
    input_range: Optional[Tuple[float, float]],
    seed: Optional[int],
    samples: Optional[int],
    rtol: Optional[float],
    atol: Optional[float],
) -> List[str]:
    """The ``npuopt optimize`` flags for these keywords."""
    flags = ["--intent", intent]
    if target is not None:
        flags += ["--target", os.fspath(target)]
    if passes is not None:
        flags += _names("--passes", passes, empty="none")
    if skip is not None:
        flags += _names("--skip", skip, empty=None)
    if isinstance(force_passes, str):
        force_passes = [force_passes]
    for p in force_passes:
        flags += ["--force-pass", p]
    if not verify:
        flags.append("--no-verify")
    if verify_each:
        flags.append("--verify-each")
    if allow_unverified:
        flags.append("--allow-unverified")
    if max_rewrites is not None:
        flags += ["--max-rewrites", str(int(max_rewrites))]
    return flags + _check_flags(input_shapes, input_range, seed, samples, rtol, atol)
