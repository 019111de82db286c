"""The compose file is only read here (no Docker engine): its roles and settings must be real."""

from pathlib import Path

import yaml

from core.settings import known_env_names
from ops.cli import ROLES

ROOT = Path(__file__).resolve().parents[2]


def _services():
    doc = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
    return {name: svc for name, svc in doc["services"].items() if svc.get("image") == "switchboard:latest"}


def test_every_switchboard_service_runs_a_real_role():
    services = _services()
    assert {"smtp", "normalizer", "api", "gateway"} <= set(services)
    for name, svc in services.items():
        command = svc["command"]
        assert command[0] in ROLES, f"{name}: {command} is not a switchboard role"


def test_every_environment_variable_is_a_known_setting():
    for name, svc in _services().items():
        unknown = set(svc["environment"]) - known_env_names()
        assert not unknown, f"{name} sets unknown settings {unknown}"


def test_dockerfile_runs_as_non_root_with_a_healthcheck():
    text = (ROOT / "docker" / "Dockerfile").read_text()
    assert "USER switchboard" in text and "HEALTHCHECK" in text and 'ENTRYPOINT ["switchboard"]' in text
