"""Pure logic: the data contract, feature pipeline, estimators and metrics (no I/O)."""
