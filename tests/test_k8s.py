"""deploy/k8s of generated projects: every overlay rendered by the real ``kubectl kustomize``
and valid under ``kubernetes-validate --strict`` (the generated ``ci/k8s.sh``, as the generated
CI runs it), then read back: probes, security context, resources, each environment's model
alias and image, the jobs, the shared prediction-log volume, and no Secret value anywhere.

``kubectl`` is installed on the machines and in CI (``.ci/run`` checks it); without it these
tests fail under ``CI=true`` and are skipped elsewhere.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from .helpers import project_env, render

ENVIRONMENTS = {"dev": "champion", "staging": "staging", "production": "production"}
# Every answer value that changes a manifest: CI provider (image registry, CI script), and
# monitoring (the shared prediction-log volume and the monitor CronJob).
ANSWERS = {
    "github-monitoring": {"ci": "github", "monitoring": True},
    "gitlab-no-monitoring": {
        "ci": "gitlab",
        "monitoring": False,
        "project_name": "Fraud Scoring 2",
        "mlflow_tracking_uri": "https://mlflow.example.com:8443/team",
    },
    "no-ci": {"ci": "none", "monitoring": True, "project_name": "Churn"},
}
BIN = Path(sys.executable).parent
SECRET_NAME = re.compile(r"(PASSWORD|SECRET|TOKEN|_KEY|API_KEYS|CREDENTIAL)", re.IGNORECASE)


def kubectl() -> str:
    found = shutil.which("kubectl")
    if found is None:
        message = "kubectl is not on the PATH (.ci/run should have stopped before the tests)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


def validate_overlays(project: Path, out: Path) -> subprocess.CompletedProcess[str]:
    """The generated CI's check when the project has it (ci/k8s.sh), else the same two
    commands; this repository's kubernetes-validate comes first on the PATH."""
    kubectl()
    env = project_env({"PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"})
    script = project / "ci" / "k8s.sh"
    if script.is_file():
        command = ["bash", str(script), str(out)]
        return subprocess.run(command, cwd=project, env=env, capture_output=True, text=True)
    out.mkdir(parents=True, exist_ok=True)
    rendered = []
    for environment in ENVIRONMENTS:
        target = out / f"{environment}.yaml"
        overlay = f"deploy/k8s/overlays/{environment}"
        result = subprocess.run(
            [kubectl(), "kustomize", overlay], cwd=project, capture_output=True, text=True
        )
        if result.returncode != 0:
            return result
        target.write_text(result.stdout)
        rendered.append(str(target))
    command = [str(BIN / "kubernetes-validate"), "--strict", "--quiet", *rendered]
    return subprocess.run(command, cwd=project, env=env, capture_output=True, text=True)


class Rendered:
    """A generated project and its overlays as rendered and validated."""

    def __init__(self, project: Path, answers: dict[str, Any], out: Path) -> None:
        self.project, self.answers = project, answers
        result = validate_overlays(project, out)
        assert result.returncode == 0, f"overlays invalid:\n{result.stdout}\n{result.stderr}"
        self.log = result.stdout + result.stderr
        self.slug = yaml.safe_load((project / ".copier-answers.yml").read_text())["project_slug"]
        self.docs = {
            environment: list(yaml.safe_load_all((out / f"{environment}.yaml").read_text()))
            for environment in ENVIRONMENTS
        }

    def of_kind(self, environment: str, kind: str) -> list[dict[str, Any]]:
        return [doc for doc in self.docs[environment] if doc["kind"] == kind]

    def one(self, environment: str, kind: str, name_part: str = "") -> dict[str, Any]:
        (doc,) = [d for d in self.of_kind(environment, kind) if name_part in d["metadata"]["name"]]
        return doc


@pytest.fixture(scope="module", params=sorted(ANSWERS))
def rendered(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    answers = {"serving": True, **ANSWERS[request.param]}
    base = tmp_path_factory.mktemp(request.param)
    project = render(base / "project", answers, skip_tasks=True)
    return Rendered(project, answers, base / "rendered")


def pod_specs(rendered: Rendered, environment: str) -> dict[str, dict[str, Any]]:
    """Every pod template (the Deployment's, each CronJob's job template's), by owner name."""
    specs = {}
    for doc in rendered.docs[environment]:
        if doc["kind"] == "Deployment":
            specs[doc["metadata"]["name"]] = doc["spec"]["template"]["spec"]
        elif doc["kind"] == "CronJob":
            specs[doc["metadata"]["name"]] = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return specs


def test_every_overlay_renders_and_validates_strictly(rendered: Rendered) -> None:
    """Given a generated project, when the overlays are rendered and validated (ci/k8s.sh where
    CI is generated), then each one has the service, its autoscaler, disruption budget,
    network policies, settings and jobs."""
    for environment in ENVIRONMENTS:
        kinds = sorted({doc["kind"] for doc in rendered.docs[environment]})
        print(f"{rendered.slug} {environment}: {len(rendered.docs[environment])} objects")

        expected = {
            "ConfigMap",
            "CronJob",
            "Deployment",
            "HorizontalPodAutoscaler",
            "NetworkPolicy",
            "PersistentVolumeClaim",
            "PodDisruptionBudget",
            "Service",
            "ServiceAccount",
        }
        assert set(kinds) == expected, f"{environment}: {kinds}"
        namespaces = {doc["metadata"].get("namespace") for doc in rendered.docs[environment]}
        assert len(namespaces) == 1 and f"-{environment}" in str(namespaces), namespaces
    if (rendered.project / "ci" / "k8s.sh").is_file():
        assert "valid:" in rendered.log, rendered.log


def test_the_default_output_of_the_ci_check_is_ignored_by_git(
    rendered: Rendered, tmp_path: Path
) -> None:
    """ci/k8s.sh run by hand writes k8s-rendered/ in the project: never a file to commit."""
    script = rendered.project / "ci" / "k8s.sh"
    if not script.is_file():
        pytest.skip("no generated CI in this answer set")
    default = re.search(r'out="\$\{1:-([^}]+)\}"', script.read_text())
    assert default, "ci/k8s.sh names its default output folder"
    project = tmp_path / "project"
    project.mkdir()
    (project / ".gitignore").write_text((rendered.project / ".gitignore").read_text())
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    result = subprocess.run(["git", "check-ignore", "-q", f"{default[1]}/dev.yaml"], cwd=project)

    assert result.returncode == 0, f"{default[1]}/ is not in the generated .gitignore"


def test_the_service_is_probed_on_health_and_ready(rendered: Rendered) -> None:
    for environment in ENVIRONMENTS:
        (container,) = rendered.one(environment, "Deployment")["spec"]["template"]["spec"][
            "containers"
        ]

        probes = {
            kind: (container[kind]["httpGet"]["path"], container[kind]["httpGet"]["port"])
            for kind in ("startupProbe", "livenessProbe", "readinessProbe")
        }
        assert probes == {
            "startupProbe": ("/health", "http"),
            "livenessProbe": ("/health", "http"),
            "readinessProbe": ("/ready", "http"),
        }, probes
        assert container["ports"] == [{"name": "http", "containerPort": 8000}]
        # The start-up budget outlasts a model download; liveness takes over only after it.
        startup = container["startupProbe"]
        assert startup["periodSeconds"] * startup["failureThreshold"] >= 120, startup


def test_every_pod_runs_restricted_with_resources(rendered: Rendered) -> None:
    """The Pod Security Standard "restricted" and then some: non-root, read-only root
    filesystem, no privilege escalation, no capability, seccomp RuntimeDefault, no service
    account token; requests and limits on every container."""
    for environment in ENVIRONMENTS:
        specs = pod_specs(rendered, environment)
        assert len(specs) == (4 if rendered.answers["monitoring"] else 3), sorted(specs)
        for owner, spec in specs.items():
            pod = spec["securityContext"]
            assert pod["runAsNonRoot"] is True and pod["runAsUser"] == 10001, owner
            assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, owner
            assert spec["automountServiceAccountToken"] is False, owner
            for container in [*spec.get("initContainers", []), *spec["containers"]]:
                where = f"{environment} {owner}/{container['name']}"
                context = container["securityContext"]
                assert context["allowPrivilegeEscalation"] is False, where
                assert context["readOnlyRootFilesystem"] is True, where
                assert context["capabilities"] == {"drop": ["ALL"]}, where
                assert "privileged" not in context or context["privileged"] is False, where
                resources = container["resources"]
                assert {"cpu", "memory"} <= set(resources["requests"]), where
                assert "memory" in resources["limits"], where
            mounts = {m["mountPath"] for c in spec["containers"] for m in c["volumeMounts"]}
            assert "/tmp" in mounts, f"{owner}: /tmp is writable (emptyDir)"


def test_writable_places_are_volumes_and_every_pod_log_reaches_the_monitor(
    rendered: Rendered,
) -> None:
    """/tmp is an emptyDir; with monitoring, /app/logs is each pod's own folder of one shared
    ReadWriteMany volume, which the monitor CronJob mounts whole (read-only) and reads as a
    folder; without monitoring, /app/logs is an emptyDir and there is no monitor."""
    slug = rendered.slug
    for environment in ENVIRONMENTS:
        deployment = rendered.one(environment, "Deployment")
        spec = deployment["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in spec["volumes"]}
        (container,) = spec["containers"]
        logs = next(m for m in container["volumeMounts"] if m["mountPath"] == "/app/logs")
        cronjobs = {d["metadata"]["name"]: d for d in rendered.of_kind(environment, "CronJob")}

        assert "emptyDir" in volumes["tmp"], volumes["tmp"]
        if not rendered.answers["monitoring"]:
            assert "emptyDir" in volumes[logs["name"]], volumes[logs["name"]]
            assert not any("monitor" in name for name in cronjobs), sorted(cronjobs)
            continue
        claim = volumes[logs["name"]]["persistentVolumeClaim"]["claimName"]
        pvc = next(
            d
            for d in rendered.of_kind(environment, "PersistentVolumeClaim")
            if d["metadata"]["name"] == claim
        )
        assert pvc["spec"]["accessModes"] == ["ReadWriteMany"], "pods on many nodes write it"
        assert logs["subPathExpr"] == "$(POD_NAME)", "one folder per pod"
        env = {e["name"]: e for e in container["env"]}
        assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"

        monitor = cronjobs[f"{slug}-monitor"]
        pod = monitor["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        claims = {
            v["name"]: v["persistentVolumeClaim"]["claimName"]
            for v in pod["volumes"]
            if "persistentVolumeClaim" in v
        }
        (main,) = pod["containers"]
        reading = [
            m
            for m in main["volumeMounts"]
            if claims.get(m["name"]) == claim and m["mountPath"] == "/app/logs"
        ]
        assert reading and reading[0].get("readOnly") is True and "subPath" not in reading[0]
        assert "monitor --current /app/logs" in " ".join(main["args"]), main["args"]
        assert not monitor["spec"].get("suspend"), "the monitor runs on its schedule"
        assert monitor["spec"]["jobTemplate"]["spec"]["backoffLimit"] == 0, "exit 1 is a verdict"


def test_each_environment_serves_its_own_alias_from_its_own_image(rendered: Rendered) -> None:
    slug = rendered.slug
    model = rendered.slug  # model_name defaults to the slug
    for environment, alias in ENVIRONMENTS.items():
        (settings,) = rendered.of_kind(environment, "ConfigMap")
        images = {
            c["image"]
            for spec in pod_specs(rendered, environment).values()
            for c in spec["containers"]
        }

        assert settings["data"]["SERVING_MODEL_URI"] == f"models:/{model}@{alias}", settings
        assert settings["data"]["MLFLOW_TRACKING_URI"].startswith("http"), settings["data"]
        assert len(images) == 1, f"one image per environment, set by `images:`: {images}"
        (image,) = images
        assert image != slug and image.split(":")[0].endswith(f"/{slug}"), image
        (deployment,) = rendered.of_kind(environment, "Deployment")
        env_from = deployment["spec"]["template"]["spec"]["containers"][0]["envFrom"]
        assert {"name": settings["metadata"]["name"]} in [e.get("configMapRef") for e in env_from]
        if rendered.answers["monitoring"]:
            # the monitor scores and ages the model the service loads: the same setting
            monitor = pod_specs(rendered, environment)[f"{slug}-monitor"]["containers"][0]
            sources = [e.get("configMapRef") for e in monitor["envFrom"]]
            assert {"name": settings["metadata"]["name"]} in sources, monitor["envFrom"]
            overridden = [e["name"] for e in monitor.get("env", [])]
            assert "SERVING_MODEL_URI" not in overridden, "the monitor reads another model"
    uri = rendered.answers.get("mlflow_tracking_uri")
    if uri:
        assert rendered.one("production", "ConfigMap")["data"]["MLFLOW_TRACKING_URI"] == uri


def test_the_deploy_job_sets_the_image_by_the_base_image_name(
    rendered: Rendered, tmp_path: Path
) -> None:
    """The promotion's deploy job runs `kustomize edit set image <project_slug>=...`: that
    name is the one the base uses, so the edit reaches every container of the service and
    the jobs (and not the git-sync helper)."""
    slug = rendered.slug
    overlay = rendered.project / "deploy" / "k8s"
    copy = tmp_path / "k8s"
    shutil.copytree(overlay, copy)
    kustomization = copy / "overlays" / "staging" / "kustomization.yaml"
    data = yaml.safe_load(kustomization.read_text())
    # What `kustomize edit set image name=new:tag` writes into the overlay.
    data["images"] = [{"name": slug, "newName": "registry.test/team/app", "newTag": "abc123"}]
    kustomization.write_text(yaml.safe_dump(data))

    result = subprocess.run(
        [kubectl(), "kustomize", str(copy / "overlays" / "staging")],
        capture_output=True,
        text=True,
        check=True,
    )
    images = set(re.findall(r"image: (\S+)", result.stdout))

    ours = {image for image in images if "/git-sync/" not in image}
    assert ours == {"registry.test/team/app:abc123"}, images


def test_service_autoscaler_budget_and_policies_select_the_service_pods(
    rendered: Rendered,
) -> None:
    for environment in ENVIRONMENTS:
        deployment = rendered.one(environment, "Deployment")
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        service = rendered.one(environment, "Service")
        pdb = rendered.one(environment, "PodDisruptionBudget")
        hpa = rendered.one(environment, "HorizontalPodAutoscaler")
        policy = rendered.one(environment, "NetworkPolicy", "-api")

        def selects(selector: dict[str, str], labels: dict[str, str] = pod_labels) -> bool:
            return bool(selector) and all(labels.get(k) == v for k, v in selector.items())

        assert selects(service["spec"]["selector"]), service["spec"]["selector"]
        assert selects(pdb["spec"]["selector"]["matchLabels"]), pdb["spec"]
        assert selects(policy["spec"]["podSelector"]["matchLabels"]), policy["spec"]
        assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
        assert deployment["spec"]["replicas"] == hpa["spec"]["minReplicas"]
    production = rendered.one("production", "HorizontalPodAutoscaler")["spec"]["minReplicas"]
    assert production >= 2, "production survives the loss of a pod"


def test_batch_scoring_and_pipeline_jobs_are_templates_run_on_demand(rendered: Rendered) -> None:
    """Suspended CronJobs as Job templates: `kubectl apply -k` updates them on every deploy
    (a Job's pod template is immutable), `kubectl create job --from=cronjob/...` runs one."""
    slug = rendered.slug
    for environment in ENVIRONMENTS:
        cronjobs = {d["metadata"]["name"]: d for d in rendered.of_kind(environment, "CronJob")}
        batch, pipeline = cronjobs[f"{slug}-batch-score"], cronjobs[f"{slug}-pipeline"]

        for job in (batch, pipeline):
            assert job["spec"]["suspend"] is True, job["metadata"]["name"]
            pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
            assert pod["restartPolicy"] == "Never"
            (checkout,) = pod["initContainers"]
            assert checkout["image"].startswith("registry.k8s.io/git-sync/git-sync:v4.")
        (scorer,) = batch["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
        assert scorer["args"][1:3] == ["predict", "--input=/data/input.csv"], scorer["args"]
        assert "--model=$(SERVING_MODEL_URI)" in scorer["args"], "this environment's model"
        (worker,) = pipeline["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
        assert "dvc repro" in " ".join(worker["args"]), worker["args"]


def test_no_secret_value_is_in_the_manifests(rendered: Rendered) -> None:
    """Secrets by reference only: no Secret object or generator in git, no credential-like
    variable with a literal value, and the references are optional Secrets by name."""
    sources = sorted((rendered.project / "deploy" / "k8s").rglob("*.yaml"))
    secret_refs = set()
    for path in sources:
        text = path.read_text()
        for doc in yaml.safe_load_all(text):
            assert doc.get("kind") != "Secret", f"{path}: a Secret object is committed"
            assert "secretGenerator" not in doc, f"{path}: a secretGenerator is committed"
    for environment in ENVIRONMENTS:
        for doc in rendered.docs[environment]:
            assert doc["kind"] != "Secret", doc["metadata"]
            if doc["kind"] == "ConfigMap":
                leaked = [key for key in doc["data"] if SECRET_NAME.search(key)]
                assert not leaked, f"secret-like settings in a ConfigMap: {leaked}"
        for owner, spec in pod_specs(rendered, environment).items():
            for container in [*spec.get("initContainers", []), *spec["containers"]]:
                for variable in container.get("env", []):
                    if SECRET_NAME.search(variable["name"]):
                        assert "value" not in variable, f"{owner}: {variable['name']} in git"
                for source in container.get("envFrom", []):
                    if "secretRef" in source:
                        assert source["secretRef"].get("optional") is True, source
                        secret_refs.add(source["secretRef"]["name"])
    slug = rendered.slug
    assert f"{slug}-tracking" in secret_refs and f"{slug}-storage" in secret_refs, secret_refs


def test_every_workload_that_reads_the_registry_gets_tracking_credentials(
    rendered: Rendered,
) -> None:
    """The service, batch scoring and the monitor (the served model's age) read the registry, the
    pipeline writes it: against the team's server (basic-auth on) each needs its user, or its
    first MLflow call gets 401 and the Job fails."""
    slug = rendered.slug
    for environment in ENVIRONMENTS:
        for owner, spec in pod_specs(rendered, environment).items():
            (container,) = spec["containers"]
            secrets = {
                source["secretRef"]["name"]
                for source in container.get("envFrom", [])
                if "secretRef" in source
            }
            wanted = f"{slug}-tracking-write" if owner == f"{slug}-pipeline" else f"{slug}-tracking"
            assert wanted in secrets, f"{environment}: {owner} has no {wanted}: {sorted(secrets)}"


def test_the_strict_validator_rejects_a_misspelled_field(
    rendered: Rendered, tmp_path: Path
) -> None:
    """The check can fail: a field name with a typo in the Deployment makes the overlays
    invalid (kustomize keeps unknown fields; only the strict schema check catches them)."""
    copy = tmp_path / "project"
    shutil.copytree(rendered.project, copy, ignore=shutil.ignore_patterns(".git", ".venv"))
    deployment = copy / "deploy" / "k8s" / "base" / "deployment.yaml"
    text = deployment.read_text()
    deployment.write_text(text.replace("readinessProbe:", "readynessProbe:", 1))

    result = validate_overlays(copy, tmp_path / "out")

    assert result.returncode != 0, result.stdout + result.stderr
    assert "readynessProbe" in result.stdout + result.stderr


def test_without_serving_there_are_no_manifests(tmp_path: Path) -> None:
    project = render(tmp_path / "project", {"serving": False}, skip_tasks=True)

    assert not (project / "deploy").exists()
    assert not (project / "ci" / "k8s.sh").exists()


POD_LOGS = """
import sys
from pathlib import Path

import pandas as pd

from my_ml_project.engine.log_queue import PredictionLog
from my_ml_project.engine.log_writer import ScoredRequest
from my_ml_project.monitoring.settings import MonitoringSettings

if __name__ == "__main__":  # the log's writer process is spawned: it imports this file
    volume, table, data = Path(sys.argv[1]), pd.read_parquet(sys.argv[2]), Path(sys.argv[3])
    features = table.drop(columns=["target"])
    features.to_csv(data / "input.csv", index=False)  # the batch job's input
    print(len(features))
    for n, pod in enumerate(["my-ml-project-5f7c9-a1", "my-ml-project-5f7c9-b2"]):
        settings = MonitoringSettings(log_path=volume / pod / "predictions.jsonl", flush_seconds=0)
        log = PredictionLog(settings)
        rows = features.iloc[n::2].to_dict("records")
        log.submit(ScoredRequest(f"req-{n}", rows, [int(n)] * len(rows), "1", "champion", 1.0))
        log.flush()
        log.close()
"""


def job_args(manifests: list[dict[str, Any]], name: str) -> list[str]:
    (job,) = [d for d in manifests if d["kind"] == "CronJob" and d["metadata"]["name"] == name]
    (container,) = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    return [*container.get("command", []), *container["args"]]


@pytest.mark.slow
def test_the_jobs_commands_run_in_a_checkout_like_git_sync_s(
    default_project: Path, tmp_path: Path
) -> None:
    """Given the default project's pipeline run and pushed, and a git worktree of it (what
    git-sync makes), when the monitor, batch-scoring and pipeline jobs' own commands (from the
    rendered dev overlay, the volumes' paths moved to folders here) run in it, then the monitor
    reads both pods' logs of the shared volume, scoring writes every row, and the pipeline is
    up to date."""
    result = subprocess.run(
        [kubectl(), "kustomize", "deploy/k8s/overlays/dev"],
        cwd=default_project,
        capture_output=True,
        text=True,
        check=True,
    )
    manifests = list(yaml.safe_load_all(result.stdout))
    project = tmp_path / "project"  # a copy: the session's project stays as it is
    shutil.copytree(default_project, project, ignore=shutil.ignore_patterns(".venv"))
    venv = default_project / ".venv" / "bin"
    env = project_env(
        {
            "PATH": f"{venv}{os.pathsep}{os.environ['PATH']}",
            "DVC_SITE_CACHE_DIR": str(tmp_path / "dvc-site"),
            "MLFLOW_TRACKING_URI": f"sqlite:///{project / 'mlflow.db'}",
            "GIT_AUTHOR_NAME": "ci",
            "GIT_AUTHOR_EMAIL": "ci@example.com",
            "GIT_COMMITTER_NAME": "ci",
            "GIT_COMMITTER_EMAIL": "ci@example.com",
        }
    )

    def sh(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)

    for command in (
        ["git", "add", "-A"],
        ["git", "-c", "core.hooksPath=/dev/null", "commit", "-qm", "pipeline run"],
        ["dvc", "push", "-q"],
        # Beside the project: the relative DVC remote (../<slug>-dvc-storage) is the same one.
        [
            "git",
            "-c",
            "core.hooksPath=/dev/null",
            "worktree",
            "add",
            "-q",
            "--detach",
            str(tmp_path / "checkout"),
            "HEAD",
        ],
    ):
        done = sh(command, project)
        assert done.returncode == 0, f"{command}: {done.stdout}{done.stderr}"
    checkout = tmp_path / "checkout"
    volume, data, reports = tmp_path / "logs", tmp_path / "data", tmp_path / "reports"
    table = default_project / "data" / "processed" / "test.parquet"
    script = tmp_path / "pods.py"
    script.write_text(POD_LOGS)
    data.mkdir()
    written = sh([str(venv / "python"), str(script), str(volume), str(table), str(data)], tmp_path)
    assert written.returncode == 0, written.stderr
    rows = int(written.stdout)

    def in_pod(args: list[str]) -> subprocess.CompletedProcess[str]:
        """A job's command, with Kubernetes' $(VAR) expansion and the mount paths here."""
        text = [
            arg.replace("$(SERVING_MODEL_URI)", "models:/my-ml-project@champion")
            .replace("/app/logs", str(volume))
            .replace("/app/reports", str(reports))
            .replace("/data/", f"{data}/")
            for arg in args
        ]
        return sh(text, checkout)

    monitor = in_pod(job_args(manifests, "my-ml-project-monitor"))
    scoring = in_pod(job_args(manifests, "my-ml-project-batch-score"))
    pipeline = in_pod(job_args(manifests, "my-ml-project-pipeline"))

    (summary,) = reports.glob("*/summary.json")
    assert monitor.returncode in (0, 1), f"a verdict, not a failure: {monitor.stderr[-3000:]}"
    assert f"{rows} rows checked" in monitor.stdout, "both pods' rows are read"
    assert json.loads(summary.read_text())["current_rows"] == rows
    assert scoring.returncode == 0, scoring.stderr[-3000:]
    with (data / "predictions.csv").open() as predictions:
        assert len(list(csv.DictReader(predictions))) == rows, "every row scored"
    again = in_pod(job_args(manifests, "my-ml-project-batch-score"))
    assert again.returncode == 0, f"the next run replaces the last: {again.stderr[-3000:]}"
    assert pipeline.returncode == 0, pipeline.stderr[-3000:]
    assert "Data and pipelines are up to date" in pipeline.stdout + pipeline.stderr
