"""deploy/k8s: every manifest validates against the Kubernetes schemas (``kubernetes-validate``, offline), and
what the manifests say matches the code: real settings, real commands, the worker's probe paths, the image's
user, the scoring consumer group KEDA scales on.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click
import kubernetes_validate
import pytest
import yaml

from driftline.cli import main as cli
from driftline.contract.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
#: The oldest Kubernetes release the manifests must work on (CronJob timeZone is GA from 1.27).
KUBERNETES_VERSION = "1.29.0"
SECRET_KEYS = {"DRIFTLINE_MODEL_HMAC_KEY", "DRIFTLINE_REDIS_PASSWORD"}


def _kustomization() -> dict[str, Any]:
    return yaml.safe_load((K8S / "kustomization.yaml").read_text())


def _resources() -> dict[str, dict[str, Any]]:
    """kind/name -> manifest, for every resource the kustomization lists."""
    out = {}
    for name in _kustomization()["resources"]:
        for doc in yaml.safe_load_all((K8S / name).read_text()):
            out[f"{doc['kind']}/{doc['metadata']['name']}"] = doc
    return out


def _pod_specs() -> dict[str, dict[str, Any]]:
    """kind/name -> pod spec of the Deployment and every CronJob."""
    out = {}
    for key, doc in _resources().items():
        if doc["kind"] == "Deployment":
            out[key] = doc["spec"]["template"]["spec"]
        elif doc["kind"] == "CronJob":
            out[key] = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return out


def _settings_map() -> dict[str, str]:
    return _resources()["ConfigMap/driftline-settings"]["data"]


def test_kustomization_lists_every_manifest_in_the_folder_and_nothing_else() -> None:
    listed = set(_kustomization()["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk
    assert _kustomization()["namespace"] == "driftline"


@pytest.mark.parametrize("key", sorted(k for k, d in _resources().items() if "." not in d["apiVersion"].split("/")[0]))
def test_every_core_manifest_validates_against_the_kubernetes_schema(key: str) -> None:
    """Strict: an unknown or misspelt field fails (``kubernetes-validate`` ships the schemas; no cluster)."""
    kubernetes_validate.validate(_resources()[key], KUBERNETES_VERSION, strict=True)


def test_a_misspelt_field_fails_the_schema_validation() -> None:
    """The validation above can fail: a probe with a misspelt field is refused."""
    deployment = _resources()["Deployment/driftline-worker"]
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGett"] = {"path": "/healthz"}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_the_namespace_enforces_the_restricted_pod_security_standard() -> None:
    labels = _resources()["Namespace/driftline"]["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def _image_uid() -> int:
    match = re.search(r"useradd .*--uid (\d+)", (ROOT / "Dockerfile").read_text())
    assert match, "the Dockerfile creates a numeric user"
    return int(match.group(1))


@pytest.mark.parametrize("key", sorted(_pod_specs()))
def test_every_pod_is_restricted_numeric_user_read_only_root_no_capabilities(key: str) -> None:
    pod = _pod_specs()[key]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == _image_uid()
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["automountServiceAccountToken"] is False
    for container in pod["containers"]:
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"]["drop"] == ["ALL"] and "add" not in context["capabilities"]
        assert {"requests", "limits"} <= set(container["resources"])
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(container["resources"][kind])
        # A read-only root needs writable scratch space for HOME (Faust's data directory) and /tmp.
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert {"/home/driftline", "/tmp"} <= mounts


@pytest.mark.parametrize("key", sorted(_pod_specs()))
def test_secrets_come_from_the_secret_volume_never_from_the_environment(key: str) -> None:
    pod = _pod_specs()[key]
    volumes = {v["name"]: v for v in pod["volumes"]}
    for container in pod["containers"]:
        assert all("secretKeyRef" not in e.get("valueFrom", {}) for e in container.get("env", []))
        assert all("secretRef" not in e for e in container.get("envFrom", []))
        mount = next(m for m in container["volumeMounts"] if m["mountPath"] == "/run/secrets/driftline")
        assert mount["readOnly"] is True
        assert volumes[mount["name"]]["secret"]["secretName"] == "driftline-secrets"


def test_settings_read_the_secret_files_the_readme_tells_to_create(tmp_path: Path) -> None:
    """The README's `create secret` keys are secret settings, and Settings reads them as files."""
    readme = (ROOT / "README.md").read_text()
    command = readme[readme.index("create secret generic driftline-secrets") :].split("\n\n")[0]
    assert set(re.findall(r"--from-literal=(\w+)=", command)) == SECRET_KEYS
    for key in SECRET_KEYS:
        (tmp_path / key).write_text(f"secret-of-{key}\n")
    settings = Settings(_secrets_dir=tmp_path, **{k.lower(): v for k, v in _settings_map().items() if "URL" in k})
    assert settings.model_hmac_key.get_secret_value() == "secret-of-DRIFTLINE_MODEL_HMAC_KEY"
    assert settings.redis_password.get_secret_value() == "secret-of-DRIFTLINE_REDIS_PASSWORD"


def test_the_configmap_sets_only_real_settings_and_they_validate() -> None:
    data = _settings_map()
    fields = {f"DRIFTLINE_{name.upper()}" for name in Settings.model_fields}
    assert set(data) <= fields
    assert not set(data) & SECRET_KEYS
    settings = Settings(model_hmac_key="k", **{k.removeprefix("DRIFTLINE_").lower(): v for k, v in data.items()})
    assert settings.metrics_host == "0.0.0.0"


def _worker_container() -> dict[str, Any]:
    return _pod_specs()["Deployment/driftline-worker"]["containers"][0]


def test_worker_probes_hit_the_metrics_port_the_settings_open() -> None:
    container = _worker_container()
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["metrics"] == int(_settings_map()["DRIFTLINE_METRICS_PORT"])
    probes = {kind: container[kind]["httpGet"] for kind in ("livenessProbe", "readinessProbe", "startupProbe")}
    assert {p["port"] for p in probes.values()} == {"metrics"}
    assert probes["livenessProbe"]["path"] == "/healthz" and probes["readinessProbe"]["path"] == "/readyz"


def _parse(args: list[str]) -> click.Context:
    """Resolve ``driftline ARGS`` to its command and parse the options as the CLI would (no run)."""
    group_ctx = cli.make_context("driftline", list(args), resilient_parsing=True)
    command: click.Command = cli
    ctx = group_ctx
    rest = list(args)
    while isinstance(command, click.Group):
        name, command, rest = command.resolve_command(ctx, rest)
        assert command is not None, f"driftline has no command {name}"
        ctx = command.make_context(name, list(rest), parent=ctx)
        if isinstance(command, click.Group):
            rest = ctx.protected_args + ctx.args
    return ctx


def test_worker_runs_the_worker_command() -> None:
    assert _parse(_worker_container()["args"]).command.name == "worker"


def test_retrain_cronjob_runs_offline_retrain_with_valid_options() -> None:
    container = _pod_specs()["CronJob/driftline-retrain"]["containers"][0]
    ctx = _parse(container["args"])
    assert ctx.command.name == "retrain" and str(ctx.params["out_dir"]).startswith("/work")


def test_score_cronjob_runs_driftline_score_with_valid_options() -> None:
    container = _pod_specs()["CronJob/driftline-score"]["containers"][0]
    ctx = _parse(container["args"])
    assert ctx.command.name == "score"
    batch = next(m["mountPath"] for m in container["volumeMounts"] if m["name"] == "batch")
    assert str(ctx.params["data"]).startswith(batch) and str(ctx.params["out"]).startswith(batch)
    assert ctx.params["data"].suffix == ".parquet" and ctx.params["ref"] == "default"


def test_keda_scales_the_worker_on_the_scoring_groups_lag_up_to_one_per_partition() -> None:
    scaled = _resources()["ScaledObject/driftline-worker"]
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert scaled["spec"]["scaleTargetRef"]["name"] == "driftline-worker"
    settings = Settings(topic_prefix=_settings_map()["DRIFTLINE_TOPIC_PREFIX"])
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "kafka"
    meta = trigger["metadata"]
    assert meta["consumerGroup"] == f"{settings.topic_prefix}scoring"
    assert meta["topic"] == settings.topic("events")
    assert meta["bootstrapServers"] == _settings_map()["DRIFTLINE_BROKER_URL"]
    assert int(meta["lagThreshold"]) > 0
    assert scaled["spec"]["maxReplicaCount"] == int(_settings_map()["DRIFTLINE_PARTITIONS"])
    assert 1 <= scaled["spec"]["minReplicaCount"] <= scaled["spec"]["maxReplicaCount"]
