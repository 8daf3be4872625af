"""One router per file: health, predict, invocations, metrics (and feedback, with monitoring)."""
