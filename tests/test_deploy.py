"""The deployment files cannot drift from the code.

Every ``SESSIOND_*`` variable that ``deploy/`` sets (compose, Kubernetes, the Dockerfile,
the systemd units) is a setting, and the values the Kubernetes ConfigMap and the example
Secret give together are accepted by ``Settings.from_env``; probes ask routes the service
serves; the pods' grace periods outlast the service's own drain.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.process.settings import PREFIX, Settings
from storage import embedded, server_config

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
K8S = DEPLOY / "k8s"
SETTINGS = set(Settings.__struct_fields__)
_VARIABLE = re.compile(r"\b(SESSIOND_[A-Z0-9_]+)\b")


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _kubernetes() -> dict[str, dict[str, Any]]:
    """``kind/name`` → object, for every manifest in deploy/k8s (the example Secret too)."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in _documents(path):
            if "kind" in doc and "metadata" in doc:
                found[f"{doc['kind']}/{doc['metadata']['name']}"] = doc
    return found


def _containers(objects: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        container
        for key, obj in objects.items()
        if key.startswith("Deployment/")
        for container in obj["spec"]["template"]["spec"]["containers"]
    ]


def _compose_variables() -> set[str]:
    compose = _documents(DEPLOY / "compose.yaml")[0]
    names = set(compose["x-sessiond-env"])
    for service in compose["services"].values():
        names |= set(service.get("environment") or {}) - {"<<"}
    return {name for name in names if name.startswith(PREFIX)}


def _file_variables(path: Path) -> set[str]:
    """Variables a Dockerfile ``ENV`` or a unit's ``Environment=`` line sets (not comments)."""
    lines = [line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")]
    return set(_VARIABLE.findall("\n".join(lines)))


def _set_by_deploy() -> dict[str, set[str]]:
    objects = _kubernetes()
    k8s: set[str] = set()
    for obj in objects.values():
        k8s |= set(obj.get("data") or {}) | set(obj.get("stringData") or {})
    for container in _containers(objects):
        k8s |= {item["name"] for item in container.get("env") or []}
    return {
        "compose.yaml": _compose_variables(),
        "k8s": {name for name in k8s if name.startswith(PREFIX)},
        "Dockerfile": _file_variables(DEPLOY / "Dockerfile"),
        "systemd": _file_variables(DEPLOY / "sessiond.service")
        | _file_variables(DEPLOY / "sessiond-worker.service"),
    }


@pytest.mark.parametrize("where", ["compose.yaml", "k8s", "Dockerfile", "systemd"])
def test_every_variable_the_deployment_sets_is_a_setting(where: str):
    names = _set_by_deploy()[where]
    assert names, f"{where} sets no SESSIOND_* variable: the parser missed them"
    unknown = sorted(name for name in names if name[len(PREFIX) :].lower() not in SETTINGS)
    assert unknown == [], f"{where} sets variables the service does not have: {unknown}"


def test_the_configmap_and_secret_together_start_the_service():
    objects = _kubernetes()
    environ = {
        **objects["ConfigMap/sessiond-config"]["data"],
        **objects["Secret/sessiond-secrets"]["stringData"],
        # the example's placeholder is not a key: a real one, as master-key prints it
        "SESSIOND_MASTER_KEY": "dGVzdC1tYXN0ZXIta2V5LW9mLXRoZS1zdWl0ZSEhISE=",
    }
    settings = Settings.from_env(environ)  # SystemExit on any unknown or invalid value
    assert settings.http_host == "0.0.0.0"  # noqa: S104 - a container listens on all
    assert settings.workers == 2


def test_every_deployment_reads_both_the_configmap_and_the_secret():
    objects = _kubernetes()
    for container in _containers(objects):
        sources = container["envFrom"]
        assert {"configMapRef": {"name": "sessiond-config"}} in sources
        assert {"secretRef": {"name": "sessiond-secrets"}} in sources
        assert container["args"][:3] == ["python", "-m", "app"]


def test_probes_ask_routes_the_service_serves():
    web = _kubernetes()["Deployment/sessiond-web"]["spec"]["template"]["spec"]
    container = web["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    compose = _documents(DEPLOY / "compose.yaml")[0]
    assert "/readyz" in " ".join(compose["services"]["web"]["healthcheck"]["test"])


def test_the_grace_period_outlasts_the_drain():
    objects = _kubernetes()
    grace = float(objects["ConfigMap/sessiond-config"]["data"]["SESSIOND_SHUTDOWN_GRACE_S"])
    web = objects["Deployment/sessiond-web"]["spec"]["template"]["spec"]
    pause = web["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert web["terminationGracePeriodSeconds"] > grace + pause


def test_the_kustomization_lists_every_manifest_but_the_example_secret():
    kustomization = _documents(K8S / "kustomization.yaml")[0]
    manifests = {path.name for path in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == manifests - {"secret.example.yaml"}


def test_the_hpa_and_pdb_target_the_web_deployment():
    objects = _kubernetes()
    web_labels = objects["Deployment/sessiond-web"]["spec"]["selector"]["matchLabels"]
    assert objects["PodDisruptionBudget/sessiond-web"]["spec"]["selector"]["matchLabels"] == (
        web_labels
    )
    target = objects["HorizontalPodAutoscaler/sessiond-web"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "sessiond-web")
    assert objects["Service/sessiond"]["spec"]["selector"] == web_labels


def test_redis_conf_carries_the_memory_settings_the_code_assumes():
    directives = {}
    for line in (DEPLOY / "redis.conf").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.strip().partition(" ")
            directives[name] = value.strip()
    assert server_config.MEMORY_SETTINGS
    for name, value in server_config.MEMORY_SETTINGS.items():
        assert directives.get(name) == value, name
    argv = embedded.server_argv(Path("valkey-server"), Path("d"), Path("s"), Path("l"))
    assert argv[-2 * len(server_config.MEMORY_SETTINGS) :] == server_config.command_line()
