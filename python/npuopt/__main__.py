"""``python -m npuopt`` and the ``npuopt`` console script: the command line
itself (the Rust ``npuopt::cli::run_argv``), with the same commands, flags,
output and exit codes as the ``npuopt`` binary."""

from __future__ import annotations

import signal
import sys
import threading
from typing import List, Optional

from . import _npuopt


def main(argv: Optional[List[str]] = None) -> int:
    """Runs ``npuopt ARGS…`` and returns its exit code."""
    # Behave as the Rust binary does: Ctrl-C ends the process (nothing is
    # half-written: outputs are renamed into place) and a closed pipe ends
    # it quietly, where Python would raise KeyboardInterrupt or ignore
    # SIGPIPE.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        if hasattr(signal, "SIGPIPE"):
            signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.stdout.flush()
    sys.stderr.flush()
    return _npuopt.main(sys.argv[1:] if argv is None else list(argv))


if __name__ == "__main__":
    sys.exit(main())
