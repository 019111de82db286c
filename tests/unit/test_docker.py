"""docker/ is only read here (no Docker engine): its roles, settings, health checks and
dashboard must match the code."""

import json
import re
from pathlib import Path

import yaml
from prometheus_client.metrics import MetricWrapperBase

from core import metrics
from core.settings import known_env_names
from ops.cli import ROLES, parser

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
# Roles with no HTTP port of their own: /metrics, /healthz, /readyz on the metrics port.
PORTLESS_ROLES = {"smtp", "normalizer", "router", "connector", "sender", "rules"}


def _compose() -> dict:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def _services() -> dict:
    return {n: s for n, s in _compose()["services"].items() if s.get("image") == "switchboard:latest"}


def _role(svc: dict) -> str:
    return svc["command"][0]


def _exposed_series() -> set[str]:
    """Series names core/metrics.py exposes (Counters gain ``_total``, Histograms their parts)."""
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"], "gauge": [""]}
    found = set()
    for m in vars(metrics).values():
        if isinstance(m, MetricWrapperBase):
            found |= {m._name + s for s in suffixes[m._type]}
    return found


def test_every_switchboard_service_runs_a_real_role():
    services = _services()
    assert {"smtp", "normalizer", "router", "api", "gateway"} <= set(services)
    for name, svc in services.items():
        assert _role(svc) in ROLES, f"{name}: {svc['command']} is not a switchboard role"
        assert isinstance(svc["deploy"]["replicas"], int), f"{name}: no deploy.replicas"


def test_every_environment_variable_is_a_known_setting():
    for name, svc in _services().items():
        unknown = set(svc["environment"]) - known_env_names()
        assert not unknown, f"{name} sets unknown settings {unknown}"


def test_every_service_is_health_checked_for_its_own_role():
    for name, svc in _services().items():
        test = svc["healthcheck"]["test"]
        assert test == ["CMD", "switchboard", "ops", "check", _role(svc)], name
        parser().parse_args(test[2:])  # a command the CLI accepts (exits 2 otherwise)


def test_portless_roles_serve_metrics_and_prometheus_scrapes_every_role():
    # Prometheus finds each role's replicas by its service name, on the port /metrics is on.
    jobs = yaml.safe_load((DOCKER / "prometheus.yml").read_text())["scrape_configs"]
    scraped = {sd["names"][0]: sd["port"] for job in jobs for sd in job["dns_sd_configs"]}
    for name, svc in _services().items():
        env = svc["environment"]
        if _role(svc) in PORTLESS_ROLES:
            port = int(env.get("SWITCHBOARD_METRICS_PORT", 0))
            assert port, f"{name}: SWITCHBOARD_METRICS_PORT is not set"
        else:
            port = int(env.get("SWITCHBOARD_HTTP_PORT", 8080))
        assert scraped.get(name) == port, f"{name}: prometheus.yml does not scrape port {port}"


def test_compose_documents_scaling_and_mounts_only_files_that_exist():
    assert "--scale normalizer=4" in (DOCKER / "compose.yaml").read_text()
    for name, svc in _compose()["services"].items():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DOCKER / source).exists(), f"{name} mounts missing {source}"


def test_dockerfile_is_slim_non_root_and_health_checks_with_ops_check():
    text = (DOCKER / "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in text and "USER switchboard" in text
    assert 'ENTRYPOINT ["switchboard"]' in text and 'CMD ["run"]' in text
    assert re.search(r'HEALTHCHECK .*\n?.*CMD \["switchboard", "ops", "check", "run"\]', text)


def test_dashboard_uses_only_metrics_the_code_defines():
    dashboard = json.loads((DOCKER / "grafana-dashboard.json").read_text())
    assert dashboard["schemaVersion"] >= 39
    variables = dashboard["templating"]["list"]
    assert any(v["type"] == "datasource" and v["query"] == "prometheus" for v in variables)
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    used = {name for e in exprs for name in re.findall(r"switchboard_[a-z_]+", e)}
    assert used, "the dashboard queries nothing"
    assert used <= _exposed_series(), f"not defined in core/metrics.py: {used - _exposed_series()}"
    # The ones the operations guide promises a panel for.
    assert {
        "switchboard_ingress_messages_total", "switchboard_handle_seconds_bucket",
        "switchboard_ingress_to_ticket_seconds_bucket", "switchboard_ingress_to_assigned_seconds_bucket",
        "switchboard_stream_length", "switchboard_group_lag", "switchboard_group_pending",
        "switchboard_dead_letters", "switchboard_reclaimed_total",
        "switchboard_router_queue_depth", "switchboard_router_decisions_total",
    } <= used
