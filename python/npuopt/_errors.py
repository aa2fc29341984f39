"""npuopt's exceptions, in the categories of the command line's exit codes.

The Rust side (``src/errors.rs``) raises these; they are re-exported from
``npuopt``.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional


class NpuoptError(Exception):
    """Base class of every error npuopt raises on purpose."""


class InvalidModelError(NpuoptError):
    """The model cannot be read, is not valid ONNX, or tract cannot run it.

    The message names the node or tensor at fault. The command line exits
    with 1 for these.
    """


class UsageError(NpuoptError, ValueError):
    """A bad argument: an unknown pass, intent or target, a bad option value,
    or an output that is the input file.

    The command line exits with 2 for an unknown name and 1 for a bad value.
    """


class VerificationError(NpuoptError):
    """The optimized model does not compute what the input computed (or, for
    :func:`npuopt.verify`, the two models differ). Nothing was written.

    The command line exits with 3 for these.

    Attributes:
        report: the verification figures, exactly as in the JSON report's
            ``verification`` object: ``passed``, ``seed``, ``samples``,
            ``reference``, ``noise_factor``, ``notes``, ``intermediates``
            and, per output, ``name``, ``shape``, ``max_abs_err``,
            ``max_rel_err``, ``cosine``, ``max_abs_ref``,
            ``err_vs_reference``, ``noise_floor``, ``ratio``, ``tolerance``,
            ``verdict``, ``compared_as``, ``passed``.
        failed_pass: with ``verify_each=True``, the first pass whose result
            failed verification.
        first_bad_rewrite: with ``verify_each=True``, the first rewrite that
            breaks numerics, found by bisection (as in the report's
            ``changes``).
    """

    def __init__(
        self,
        message: str,
        report: Dict[str, Any],
        failed_pass: Optional[str] = None,
        first_bad_rewrite: Optional[Dict[str, Any]] = None,
    ) -> None:
        super().__init__(message)
        self.report = report
        self.failed_pass = failed_pass
        self.first_bad_rewrite = first_bad_rewrite

    @property
    def outputs(self) -> List[Dict[str, Any]]:
        """The per-output figures (``report["outputs"]``)."""
        return self.report["outputs"]


class InternalError(NpuoptError):
    """A bug in npuopt (a Rust panic, caught before it reached Python).
    Please report it with the model."""
