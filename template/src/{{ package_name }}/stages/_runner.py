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
    """End a stage process that succeeded without tearing the interpreter down.

    With pandas, scikit-learn and MLflow loaded, Python's shutdown (freeing every module) takes
    0.5-1 s per stage. This does the rest of a normal exit, in the same order: wait for other
    threads (MLflow's artifact thread pools finish their work), run the exit hooks, flush the
    output; every file a stage writes is already closed. Only for ``python -m <stage>``.
    """
    # CPython's own first exit step (private, so only used where it exists).
    wait_for_threads = getattr(threading, "_shutdown", None)
    main = threading.main_thread()
    others = [t for t in threading.enumerate() if t is not main and not t.daemon and t.is_alive()]
    if wait_for_threads is None and others:
        return  # a normal exit waits for them
    if wait_for_threads is not None:
        wait_for_threads()
    atexit._run_exitfuncs()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
