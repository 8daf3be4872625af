-- The basic-auth app keeps its users and permissions in a database of its own
-- (ops/mlflow-auth.ini), next to the tracking store's `mlflow`.
CREATE DATABASE mlflow_auth OWNER mlflow;
