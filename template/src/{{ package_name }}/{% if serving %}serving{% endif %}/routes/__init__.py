"""One router per file: health, predict, invocations, prometheus (``/metrics``), feedback."""
