"""The admin API: its own credential, counters, transfers, settings."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(
    "path", ["/admin/counters", "/admin/transfers", "/admin/faults", "/admin/settings"]
)
def test_node_credentials_do_not_open_the_admin_api(sim, path):
    assert sim.client("a").get(path).status_code == 401
    assert sim.client("a", auth="key").get(path).status_code == 401
    assert sim.client("a", auth="none").get(path).status_code == 401
    other = sim.node("b").admin_token
    answer = sim.client("a", auth="none").get(path, headers={"X-Admin-Token": other})
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == 401
    assert sim.admin("a").get(path).status_code == 200


def test_admin_token_does_not_open_the_node_api(sim):
    token = sim.node("a").admin_token
    client = sim.client("a", auth="none")
    assert client.get("/info", headers={"X-Admin-Token": token}).status_code == 401
    bearer = {"Authorization": f"Bearer {token}", "X-Aspera-AccessKey": token}
    assert client.get("/info", headers=bearer).status_code == 401


def test_counters_count_node_api_requests_by_route_template(sim):
    sim.admin("a").post("/admin/counters/reset")
    sim.admin("b").post("/admin/counters/reset")
    data = sim.random_file("a", "f.bin", 10_000)
    transfer = sim.upload("a", "b", ["f.bin"])
    sim.client("a").get("/ping")
    sim.client("a", auth="none").get("/info")  # refused, still counted
    sim.client("a").put(f"/ops/transfers/{transfer['id']}", json={"target_rate_kbps": 5})
    sim.client("a").request("CANCEL", f"/ops/transfers/{transfer['id']}")
    sim.client("a").get("/ops/transfers")
    a = sim.admin("a").get("/admin/counters").json()
    b = sim.admin("b").get("/admin/counters").json()
    assert b["requests"] == {"POST /files/upload_setup": 1}
    assert a["requests"]["POST /ops/transfers"] == 1
    assert a["requests"]["GET /ops/transfers/{id}"] >= 1
    assert a["requests"]["GET /ping"] == 1
    assert a["requests"]["GET /info"] == 1
    assert a["requests"]["PUT /ops/transfers/{id}"] == 1
    assert a["requests"]["CANCEL /ops/transfers/{id}"] == 1
    assert a["requests"]["GET /ops/transfers"] == 1
    assert not any(key.startswith(("GET /admin", "POST /admin")) for key in a["requests"])
    assert a["transfers_created"] == 1
    assert a["bytes_sent"] == len(data)
    assert b["bytes_received"] == len(data)
    assert b["files_written"] == 1
    reset = sim.admin("a").post("/admin/counters/reset").json()
    assert reset == {
        "requests": {},
        "transfers_created": 0,
        "bytes_received": 0,
        "bytes_sent": 0,
        "files_written": 0,
    }


def test_unrouted_and_wrong_method_requests_are_counted(sim):
    sim.client("a").get("/no/such/path")
    sim.client("a").delete("/ops/transfers/x")
    requests = sim.admin("a").get("/admin/counters").json()["requests"]
    assert requests["GET (unrouted)"] == 1
    assert requests["DELETE /ops/transfers/{id}"] == 1


def test_admin_transfers_show_redacted_raw_specs(sim):
    sim.write("a", "f.txt", b"x")
    spec = sim.upload_spec("b")
    transfer_id = sim.start("a", spec, ["f.txt"], tags={"t": {"n": 1}}, cookie="c")
    sim.wait("a", transfer_id)
    (shown,) = sim.admin("a").get("/admin/transfers").json()
    assert shown["id"] == transfer_id
    assert shown["raw_spec"]["token"] == "***"
    assert shown["raw_spec"]["tags"] == {"t": {"n": 1}}
    assert shown["raw_spec"]["paths"] == [{"source": "f.txt"}]
    assert shown["status"] == "completed"
    assert spec["token"] not in str(shown)


def test_settings_change_at_run_time(sim):
    settings = sim.admin("a").get("/admin/settings").json()
    assert settings["activity_logging"] is True
    assert settings["max_retries"] == 3
    changed = (
        sim.admin("a")
        .put("/admin/settings", json={"max_retries": 7, "retention_seconds": 60})
        .json()
    )
    assert (changed["max_retries"], changed["retention_seconds"]) == (7, 60.0)
    assert sim.node("a").config.max_retries == 7
    for bad in (
        {"nope": 1},
        {"max_retries": -1},
        {"activity_logging": "yes"},
        {"max_retries": 1.5},
    ):
        assert sim.admin("a").put("/admin/settings", json=bad).status_code == 400, bad
