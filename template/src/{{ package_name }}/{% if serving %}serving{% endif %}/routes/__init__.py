"""One router per file: health, predict, invocations, metrics."""
