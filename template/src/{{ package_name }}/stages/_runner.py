"""What every stage's ``main()`` shares: logging, loading ``params.yaml``, clean failures."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from ..config import Params, ParamsError, Settings, get_settings, load_params
from ..redaction import install_log_redaction, print_exception, redact

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
    except Exception as error:  # unexpected: its traceback, with any credential redacted
        print_exception(error)
        sys.exit(1)
