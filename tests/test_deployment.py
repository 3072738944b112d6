"""docker-compose.yml validates against the Compose specification and keeps our invariants.

No Docker engine runs here, so the file is checked against the compose-spec JSON schema that
check-jsonschema ships, plus the rules a deployment of this system must keep.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    text = (ROOT / "docker-compose.yml").read_text()
    # Interpolate ${VAR:?msg} / ${VAR:-default} as compose would with the variables set.
    text = re.sub(r"\$\{([A-Z_]+)(:[?-][^}]*)?\}", "value-of-\\1", text)
    data: dict[str, Any] = yaml.safe_load(text)
    return data


def test_compose_file_matches_the_compose_specification(compose: dict[str, Any]) -> None:
    schema_file = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = json.loads(schema_file.read_text())
    jsonschema.validate(compose, schema)


def test_every_role_is_there(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) >= {
        "redis",
        "postgres",
        "migrate",
        "api",
        "worker",
        "beat",
        "flower",
        "node-a",
        "node-b",
    }


def test_workers_scale_and_beat_does_not(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    assert "container_name" not in worker and "ports" not in worker, "scalable with --scale"
    assert compose["services"]["beat"]["deploy"]["replicas"] == 1


def test_flower_has_auth_and_stays_on_loopback(compose: dict[str, Any]) -> None:
    flower = compose["services"]["flower"]
    command = flower["command"]
    # The flower command: read-only, basic auth always on, the password from the environment.
    assert command[:2] == ["hsts-orchestrator", "flower"]
    assert command[command.index("--password-env") + 1] == "FLOWER_PASSWORD"
    assert flower["environment"]["FLOWER_PASSWORD"] == "value-of-FLOWER_PASSWORD"
    assert flower["environment"]["ORCH_DATABASE_URL"].startswith("postgresql")  # merged env
    assert all(str(p).startswith("127.0.0.1:") for p in flower["ports"])


def test_services_wait_for_the_migration(compose: dict[str, Any]) -> None:
    for name in ("api", "worker", "beat"):
        depends = compose["services"][name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"


def test_secrets_come_from_the_environment_with_no_defaults(compose: dict[str, Any]) -> None:
    raw = (ROOT / "docker-compose.yml").read_text()
    for name in ("ORCH_SECRET_KEYS", "FLOWER_PASSWORD", "REDIS_PASSWORD", "POSTGRES_PASSWORD"):
        assert "${" + name + ":?" in raw, name
    assert "NODE_PASSWORD:-" not in raw and "${NODE_PASSWORD:?" in raw
    postgres = compose["services"]["postgres"]["environment"]
    assert postgres["POSTGRES_PASSWORD"] == "value-of-POSTGRES_PASSWORD"
    env = compose["services"]["api"]["environment"]
    assert ":value-of-POSTGRES_PASSWORD@postgres:" in env["ORCH_DATABASE_URL"]


def test_redis_requires_its_password_and_the_nodes_cannot_reach_it(
    compose: dict[str, Any],
) -> None:
    """Any container on the network (the simulated nodes included) could send_task a job or
    Celery's remote-control commands to a Redis without a password."""
    services = compose["services"]
    redis = services["redis"]
    assert "--requirepass" in " ".join(redis["command"])
    assert redis["environment"]["REDIS_PASSWORD"] == "value-of-REDIS_PASSWORD"
    for name in ("api", "worker", "beat", "flower", "migrate"):
        url = services[name]["environment"]["ORCH_REDIS_URL"]
        assert url == "redis://:value-of-REDIS_PASSWORD@redis:6379/0", name
    backend = set(redis["networks"]) | set(services["postgres"]["networks"])
    for name in ("node-a", "node-b"):
        assert not backend & set(services[name]["networks"]), f"{name} reaches the backend"
    assert set(services["worker"]["networks"]) >= {"backend", "nodes"}


def test_the_api_is_published_on_loopback_only(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), (name, port)


def test_dockerfile_installs_what_the_services_run() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "postgres" in dockerfile, "the PostgreSQL driver is in the image"
    assert "USER nobody" in dockerfile


def test_the_schema_check_is_not_vacuous() -> None:
    schema_file = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = json.loads(schema_file.read_text())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"services": {"api": {"image": "x", "restart_policy": "y"}}}, schema)
