"""What every stage's ``main()`` shares: logging, loading ``params.yaml``, clean failures."""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
from collections.abc import Callable

from ..config import Params, ParamsError, Settings, get_settings, load_params
from ..redaction import install_log_redaction, redact

log = logging.getLogger(__name__)

# Set by exit_now(): the process ends once the other exit hooks have run (see _end_process).
_SKIP_TEARDOWN = threading.Event()


class StageError(Exception):
    """A stage cannot go on; the message is shown to the user without a traceback."""


def run_stage(name: str, body: Callable[[Params, Settings], None]) -> None:
    """Run ``body`` with validated params; exit 1 with a readable message on known errors."""
    settings = get_settings()
    logging.basicConfig(level=settings.log_level, format="%(levelname)s %(name)s: %(message)s")
    install_log_redaction()
    try:
        body(load_params(settings.params_file), settings)
    except (StageError, ParamsError, ValueError) as error:
        print(f"stage {name} failed: {redact(str(error))}", file=sys.stderr)
        sys.exit(1)


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


# Exit hooks run last-registered first. This one is registered as the stages package loads
# (stages/__init__.py imports this module), before MLflow and the other libraries add theirs.
atexit.register(_end_process)
