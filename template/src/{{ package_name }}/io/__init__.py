"""Side effects: data files, JSON reports and the MLflow tracking server."""
