"""Which files a render must contain, by feature. Update it when the template gains a file.

``CORE`` files exist in every render. Each feature owns path prefixes: its files exist only when
it is on, and every rendered file must belong to ``CORE`` or to a feature that is on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

CORE = (
    ".copier-answers.yml",
    ".dvc/.gitignore",
    ".dvc/config",
    ".dvc/plots/confusion_counts.json",
    ".dvcignore",
    ".gitignore",
    ".pre-commit-config.yaml",
    "Makefile",
    "AGENTS.md",
    "ML_TEST_SCORE.md",
    "README.md",
    "compose.tracking.yaml",
    "data/raw/.gitkeep",
    "data/schema.yaml",
    "dvc.yaml",
    "notebooks/exploration.ipynb",
    "ops/mlflow-auth.ini",
    "ops/mlflow.Dockerfile",
    "ops/mlflow.Dockerfile.dockerignore",
    "ops/plots/package-lock.json",
    "ops/plots/package.json",
    "ops/plots/page.html",
    "ops/postgres-init.sql",
    "params.yaml",
    "pyproject.toml",
    "src/{pkg}/__init__.py",
    "src/{pkg}/__main__.py",
    "src/{pkg}/cli.py",
    "src/{pkg}/config.py",
    "src/{pkg}/core/__init__.py",
    "src/{pkg}/core/explain.py",
    "src/{pkg}/core/boosting.py",
    "src/{pkg}/core/features.py",
    "src/{pkg}/core/figures.py",
    "src/{pkg}/core/metrics.py",
    "src/{pkg}/core/model_card.py",
    "src/{pkg}/core/models.py",
    "src/{pkg}/core/native_params.py",
    "src/{pkg}/core/schema.py",
    "src/{pkg}/core/tuning.py",
    "src/{pkg}/engine/__init__.py",
    "src/{pkg}/engine/process.py",
    "src/{pkg}/engine/rows.py",
    "src/{pkg}/io/__init__.py",
    "src/{pkg}/io/data.py",
    "src/{pkg}/io/model_card.py",
    "src/{pkg}/io/model_loader.py",
    "src/{pkg}/io/promotion.py",
    "src/{pkg}/io/tracking.py",
    "src/{pkg}/predict.py",
    "src/{pkg}/redaction.py",
    "src/{pkg}/spark.py",
    "src/{pkg}/stages/__init__.py",
    "src/{pkg}/stages/_runner.py",
    "src/{pkg}/stages/evaluate.py",
    "src/{pkg}/stages/ingest.py",
    "src/{pkg}/stages/register.py",
    "src/{pkg}/stages/split.py",
    "src/{pkg}/stages/train.py",
    "src/{pkg}/stages/tune.py",
    "src/{pkg}/stages/validate.py",
    "tests/__init__.py",
    "tests/conftest.py",
    "tests/data/schema_classification.yaml",
    "tests/data/schema_regression.yaml",
    "tests/data/tiny.csv",
    "tests/test_boosting.py",
    "tests/test_config.py",
    "tests/test_engine_line.py",
    "tests/test_features.py",
    "tests/test_explain.py",
    "tests/test_figures.py",
    "tests/test_gate.py",
    "tests/test_imports.py",
    "tests/test_metrics.py",
    "tests/test_ml_test_score.py",
    "tests/test_model_card.py",
    "tests/test_model_loader.py",
    "tests/test_models.py",
    "tests/test_notebooks.py",
    "tests/test_outputs.py",
    "tests/test_pipeline.py",
    "tests/test_predict.py",
    "tests/test_promotion.py",
    "tests/test_redaction.py",
    "tests/test_schema.py",
    "tests/test_spark.py",
    "tests/test_stages.py",
    "tests/test_tuning.py",
)


@dataclass(frozen=True)
class Feature:
    """Files that exist only when ``enabled(answers)``: exact ``required`` ones, and anything
    under ``prefixes``."""

    name: str
    enabled: Callable[[Mapping[str, Any]], bool]
    required: tuple[str, ...]
    prefixes: tuple[str, ...] = ()


FEATURES = (
    # uv.lock is written at generation time when uv can resolve for the chosen Python;
    # test_render checks that it is there whenever the machine has that Python.
    Feature("lock file", lambda a: True, (), ("uv.lock",)),
    Feature(
        "monitoring",
        lambda a: a["monitoring"],
        (
            "src/{pkg}/engine/files.py",
            "src/{pkg}/engine/log_queue.py",
            "src/{pkg}/engine/log_writer.py",
            "src/{pkg}/monitoring/__init__.py",
            "src/{pkg}/monitoring/commands.py",
            "src/{pkg}/monitoring/drift.py",
            "src/{pkg}/monitoring/feedback.py",
            "src/{pkg}/monitoring/html_report.py",
            "src/{pkg}/monitoring/input_checks.py",
            "src/{pkg}/monitoring/job.py",
            "src/{pkg}/monitoring/prediction_log.py",
            "src/{pkg}/monitoring/profile.py",
            "src/{pkg}/monitoring/report.py",
            "src/{pkg}/monitoring/settings.py",
            "src/{pkg}/stages/reference.py",
            "tests/test_monitoring.py",
        ),
        ("src/{pkg}/monitoring/",),
    ),
    Feature(
        "user dataset",
        lambda a: bool(a.get("dataset_path")),
        ("data/raw/.gitignore", "data/raw/dataset.csv", "data/raw/dataset.csv.dvc"),
    ),
    # CI (issue 4): shared scripts for both providers, then each provider's workflows.
    Feature(
        "ci scripts",
        lambda a: a["ci"] != "none",
        ("ci/README.md", "ci/pipeline.sh", "ci/plots_markdown.py", "ci/report.sh"),
    ),
    Feature(
        "ci image smoke test",
        lambda a: a["ci"] != "none" and a["serving"],
        ("ci/smoke-image.sh", "ci/deploy.sh"),
    ),
    Feature("ci k8s script", lambda a: a["ci"] != "none" and a["serving"], ("ci/k8s.sh",)),
    Feature(
        "ci monitor script", lambda a: a["ci"] != "none" and a["monitoring"], ("ci/monitor.sh",)
    ),
    Feature(
        "github workflows",
        lambda a: a["ci"] == "github",
        (
            ".github/dependabot.yml",
            ".github/workflows/ci.yml",
            ".github/workflows/propose.yml",
            ".github/workflows/template-update.yml",
            ".github/workflows/promote.yml",
        ),
    ),
    Feature(
        "github image workflows",
        lambda a: a["ci"] == "github" and a["serving"],
        (
            ".github/workflows/image.yml",
            ".github/workflows/image-release.yml",
            ".github/workflows/k8s.yml",
        ),
    ),
    Feature(
        "github monitor workflow",
        lambda a: a["ci"] == "github" and a["monitoring"],
        (".github/workflows/monitor.yml",),
    ),
    Feature("gitlab ci", lambda a: a["ci"] == "gitlab", (".gitlab-ci.yml", "renovate.json")),
    # Serving (issue 3): the FastAPI service, its image and its tests.
    Feature(
        "serving",
        lambda a: a["serving"],
        (
            ".dockerignore",
            "Dockerfile",
            "compose.yaml",
            "ops/nginx.conf",
            "src/{pkg}/engine/access_log.py",
            "src/{pkg}/engine/batching.py",
            "src/{pkg}/engine/compiled.py",
            "src/{pkg}/engine/limits.py",
            "src/{pkg}/engine/plain_json.py",
            "src/{pkg}/engine/protocol.py",
            "src/{pkg}/engine/server.py",
            "src/{pkg}/serving/__init__.py",
            "src/{pkg}/serving/app.py",
            "src/{pkg}/serving/auth.py",
            "src/{pkg}/serving/commands.py",
            "src/{pkg}/serving/contract.py",
            "src/{pkg}/serving/deps.py",
            "src/{pkg}/serving/errors.py",
            "src/{pkg}/serving/model.py",
            "src/{pkg}/serving/predictor.py",
            "src/{pkg}/serving/rollout.py",
            "src/{pkg}/serving/routes/__init__.py",
            "src/{pkg}/serving/routes/docs.py",
            "src/{pkg}/serving/routes/invocations.py",
            "src/{pkg}/serving/routes/predict.py",
            "tests/test_api.py",
            "tests/test_auth.py",
            "tests/test_compiled.py",
            "tests/test_limits.py",
            "tests/test_middleware.py",
            "tests/test_rollout.py",
            "tests/test_server.py",
        ),
        ("src/{pkg}/serving/",),
    ),
    # Kubernetes (issue 16): a kustomize base and one overlay per environment.
    Feature(
        "kubernetes",
        lambda a: a["serving"],
        (
            "deploy/k8s/README.md",
            "deploy/k8s/base/batch-data-pvc.yaml",
            "deploy/k8s/base/batch-score-job.yaml",
            "deploy/k8s/base/deployment.yaml",
            "deploy/k8s/base/hpa.yaml",
            "deploy/k8s/base/kustomization.yaml",
            "deploy/k8s/base/networkpolicy-api.yaml",
            "deploy/k8s/base/networkpolicy-jobs.yaml",
            "deploy/k8s/base/pdb.yaml",
            "deploy/k8s/base/pipeline-job.yaml",
            "deploy/k8s/base/service.yaml",
            "deploy/k8s/base/serviceaccount.yaml",
            "deploy/k8s/overlays/dev/kustomization.yaml",
            "deploy/k8s/overlays/production/kustomization.yaml",
            "deploy/k8s/overlays/staging/kustomization.yaml",
        ),
        ("deploy/k8s/",),
    ),
    Feature(
        "kubernetes monitor",
        lambda a: a["serving"] and a["monitoring"],
        ("deploy/k8s/base/monitor-cronjob.yaml", "deploy/k8s/base/prediction-logs-pvc.yaml"),
    ),
    # Monitoring inside the service (issue 5): prediction log, live metrics, shadow scores.
    Feature(
        "live monitoring",
        lambda a: a["serving"] and a["monitoring"],
        (
            "ops/grafana/dashboard.json",
            "ops/grafana/dashboards.yml",
            "ops/grafana/datasource.yml",
            "ops/prometheus.yml",
            "ops/prometheus/alerts.yml",
            "src/{pkg}/serving/live_monitoring.py",
            "src/{pkg}/serving/routes/feedback.py",
            "tests/test_live_monitoring.py",
        ),
        ("ops/grafana/",),
    ),
)


def expand(path: str, answers: Mapping[str, Any]) -> str:
    return path.format(pkg=answers["package_name"])


def check(files: set[str], answers: Mapping[str, Any]) -> list[str]:
    """Problems with the rendered ``files`` for ``answers`` (an empty list when all is well)."""
    problems = []
    core = {expand(path, answers) for path in CORE}
    problems += [f"missing core file {path}" for path in sorted(core - files)]
    owned: set[str] = set()
    for feature in FEATURES:
        required = {expand(path, answers) for path in feature.required}
        prefixes = tuple(expand(p, answers) for p in feature.prefixes)
        mine = required | {f for f in files if prefixes and f.startswith(prefixes)}
        if feature.enabled(answers):
            problems += [f"{feature.name}: missing {p}" for p in sorted(required - files)]
            owned |= mine
        else:
            problems += [f"{feature.name} is off but {p} exists" for p in sorted(mine & files)]
    stray = files - core - owned
    problems += [f"unexpected file {path}" for path in sorted(stray)]
    return problems
