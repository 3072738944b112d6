"""/api/v1/nodes: register, list, show, update, disable, delete, check; secrets never shown."""

from __future__ import annotations

from tests.api.conftest import Api

CANARY = "canary-node-secret-7Qx"


def test_register_never_returns_the_secret_and_check_reads_info(api: Api) -> None:
    node = api.stack.a
    created = api.client.post(
        "/api/v1/nodes",
        json={
            "name": "node-a2",
            "base_url": node.api_url,
            "username": node.config.node_user,
            "secret": node.config.node_password,
        },
        headers=api.headers("admin"),
    )
    assert created.status_code == 201, created.text
    assert node.config.node_password not in created.text
    listed = api.client.get("/api/v1/nodes", headers=api.headers("read"))
    assert {n["name"] for n in listed.json()} >= {"node-a", "node-b", "node-a2"}
    assert node.config.node_password not in listed.text
    check = api.client.post("/api/v1/nodes/node-a2/check", headers=api.headers("read")).json()
    assert check["reachable"] is True
    assert check["node_id"] == node.config.node_id
    assert check["activity_logging"] is True


def test_wrong_secret_check_says_why(api: Api) -> None:
    api.client.post(
        "/api/v1/nodes",
        json={"name": "bad", "base_url": api.stack.a.api_url, "username": "x", "secret": CANARY},
        headers=api.headers(),
    )
    check = api.client.post("/api/v1/nodes/bad/check", headers=api.headers()).json()
    assert check["reachable"] is False
    assert "401" in check["error"]
    assert CANARY not in str(check)


def test_update_disable_and_delete(api: Api) -> None:
    api.client.post(
        "/api/v1/nodes",
        json={
            "name": "tmp",
            "base_url": "https://tmp.example:9092",
            "username": "u",
            "secret": CANARY,
        },
        headers=api.headers(),
    )
    updated = api.client.patch(
        "/api/v1/nodes/tmp",
        json={"max_outbound": 3, "root_path": "media//x/"},
        headers=api.headers(),
    )
    assert updated.json()["max_outbound"] == 3
    assert updated.json()["root_path"] == "/media/x"
    disabled = api.client.post("/api/v1/nodes/tmp/disable", headers=api.headers())
    assert disabled.json()["enabled"] is False
    enabled = api.client.post("/api/v1/nodes/tmp/enable", headers=api.headers())
    assert enabled.json()["enabled"] is True
    assert (
        api.client.post("/api/v1/nodes/tmp/enable", headers=api.headers("read")).status_code == 403
    )
    assert api.client.delete("/api/v1/nodes/tmp", headers=api.headers()).status_code == 204
    assert api.client.get("/api/v1/nodes/tmp", headers=api.headers()).status_code == 404


def test_a_node_with_jobs_cannot_be_deleted(api: Api) -> None:
    api.client.post(
        "/api/v1/jobs",
        json={
            "source_node": "node-a",
            "source_paths": ["a"],
            "destination_node": "node-b",
            "destination_path": "b",
        },
        headers=api.headers(),
    )
    answer = api.client.delete("/api/v1/nodes/node-a", headers=api.headers())
    assert answer.status_code == 409
    assert "disable it instead" in answer.json()["error"]


def test_registry_needs_admin(api: Api) -> None:
    payload = {"name": "n", "base_url": "https://n:9092", "username": "u", "secret": "s"}
    answer = api.client.post("/api/v1/nodes", json=payload, headers=api.headers("submit"))
    assert answer.status_code == 403


def test_bad_node_input_names_the_field(api: Api) -> None:
    payload = {"name": "n", "base_url": "https://user:pw@n:9092", "username": "u", "secret": "s"}
    answer = api.client.post("/api/v1/nodes", json=payload, headers=api.headers())
    assert answer.status_code == 422
    assert answer.json()["field"] == "base_url"
    taken = {"name": "node-a", "base_url": "https://n:9092", "username": "u", "secret": "s"}
    assert api.client.post("/api/v1/nodes", json=taken, headers=api.headers()).status_code == 409
    null = api.client.patch("/api/v1/nodes/node-a", json={"insecure": None}, headers=api.headers())
    assert null.status_code == 200


def test_a_url_with_a_password_is_refused_on_update_as_on_create(api: Api) -> None:
    """PATCH used to skip the base-URL check: the password was stored in clear and shown."""
    url = f"https://operator:{CANARY}@tmp.example:9092"
    node = {"name": "tmp", "base_url": url, "username": "u", "secret": "s3cret-value"}
    created = api.client.post("/api/v1/nodes", json=node, headers=api.headers())
    assert created.status_code == 422 and created.json()["field"] == "base_url"
    node["base_url"] = "https://tmp.example:9092"
    assert api.client.post("/api/v1/nodes", json=node, headers=api.headers()).status_code == 201
    for bad in (url, "https://tmp.example:9092/?key=v", "https://tmp.example:9092/#x"):
        changed = api.client.patch(
            "/api/v1/nodes/tmp", json={"base_url": bad}, headers=api.headers()
        )
        assert changed.status_code == 422, changed.text
        assert changed.json()["field"] == "base_url"
        assert CANARY not in changed.text
    shown = api.client.get("/api/v1/nodes/tmp", headers=api.headers("read"))
    assert shown.json()["base_url"] == "https://tmp.example:9092"
    assert CANARY not in shown.text


def test_the_registry_service_checks_changes_whoever_calls_it(api: Api) -> None:
    import pydantic
    import pytest

    from orchestrator.services.nodes.registry import update_node

    with pytest.raises(pydantic.ValidationError, match="base_url"):
        update_node(api.stack.ctx, "node-a", {"base_url": f"https://u:{CANARY}@h.example"})
    with pytest.raises(pydantic.ValidationError, match="root_path"):
        update_node(api.stack.ctx, "node-a", {"root_path": "../elsewhere"})
