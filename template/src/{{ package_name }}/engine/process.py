"""How a stage process that succeeded ends: without tearing the interpreter down."""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading

# Set by exit_now(): the process ends once the other exit hooks have run (see _end_process).
_SKIP_TEARDOWN = threading.Event()


def exit_now() -> None:
    """Let a stage process that succeeded end without tearing the interpreter down.

    Freeing every object of pandas, scikit-learn and MLflow at exit is slow, and every stage
    pays it (figures: the template's docs/tour.md). The exit still goes as usual: other threads
    finish (MLflow's uploads), the exit hooks run (MLflow ends its run); the last of them, this
    module's, flushes the output and ends the process with code 0. Every file a stage writes
    is closed by then. Only for ``python -m <stage>``, after ``main()``.
    """
    _SKIP_TEARDOWN.set()


def _end_process() -> None:
    if not _SKIP_TEARDOWN.is_set():
        return  # a failed stage, or main() called from tests: a normal exit
    logging.shutdown()  # its own exit hook was registered before this one, so it would not run
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


# Exit hooks run last-registered first. This one is registered as the engine loads (the
# stages package imports it first), before MLflow and the other libraries add theirs.
atexit.register(_end_process)
