"""Node API surface: auth, /ping, /info, *_setup, files, request validation, error bodies."""

from __future__ import annotations

import base64

import httpx
import pytest

from hstssim.tokens import TokenIssuer


def assert_generic_error(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == status
    assert isinstance(body["error"]["reason"], str) and body["error"]["reason"]
    assert isinstance(body["error"]["user_message"], str)
    return body["error"]


def test_ping_needs_no_credentials_and_has_an_empty_body(sim):
    response = sim.client("a", auth="none").get("/ping")
    assert response.status_code == 200
    assert response.content == b""


@pytest.mark.parametrize(
    "path", ["/info", "/ops/transfers", "/ops/transfers/abc", "/files/upload_setup"]
)
def test_missing_credentials_get_401_generic_body(sim, path):
    client = sim.client("a", auth="none")
    response = client.get(path) if path != "/files/upload_setup" else client.post(path, json={})
    error = assert_generic_error(response, 401)
    assert error["reason"] == "Unauthorized"


def test_wrong_password_and_other_nodes_credentials_are_refused(sim):
    a, b = sim.node("a"), sim.node("b")
    client = sim.client("a", auth="none")
    assert_generic_error(client.get("/info", auth=(a.config.node_user, "wrong")), 401)
    assert_generic_error(
        client.get("/info", auth=(b.config.node_user, b.config.node_password)), 401
    )
    assert_generic_error(client.get("/info", auth=b.config.first_access_key), 401)


def test_node_user_access_key_and_bearer_are_accepted(sim):
    a = sim.node("a")
    key_id = a.config.first_access_key[0]
    assert sim.client("a").get("/info").status_code == 200
    assert sim.client("a", auth="key").get("/info").status_code == 200
    bearer = {"Authorization": f"Bearer {sim.bearer_token}", "X-Aspera-AccessKey": key_id}
    assert sim.client("a", auth="none").get("/ops/transfers", headers=bearer).status_code == 200
    wrong_key = {**bearer, "X-Aspera-AccessKey": "someone-else"}
    assert_generic_error(sim.client("a", auth="none").get("/info", headers=wrong_key), 401)
    no_key = {"Authorization": f"Bearer {sim.bearer_token}"}
    assert_generic_error(sim.client("a", auth="none").get("/info", headers=no_key), 401)


@pytest.mark.parametrize("path", ["/files/browse", "/files/info"])
def test_path_endpoints_refuse_bearer(sim, path):
    key_id = sim.node("a").config.first_access_key[0]
    headers = {"Authorization": f"Bearer {sim.bearer_token}", "X-Aspera-AccessKey": key_id}
    body = {"path": "/"} if path == "/files/browse" else {"paths": [{"path": "/"}]}
    response = sim.client("a", auth="none").post(path, json=body, headers=headers)
    assert_generic_error(response, 401)
    assert sim.client("a").post(path, json=body).status_code == 200


def test_info_reports_identity_and_logging(sim):
    a = sim.node("a")
    info = sim.client("a").get("/info").json()
    assert info["application"] == "node"
    assert info["node_id"] == a.config.node_id
    assert info["transfer_user"] == "xfer"
    assert info["docroot"].startswith("file:///")
    assert info["docroot"].endswith(str(a.config.docroot.resolve()))
    assert info["transfer_activity_reporting"] == "yes"
    assert info["current_time"].endswith("Z")
    assert {c["name"] for c in info["capabilities"]} >= {"sync", "page"}
    assert {s["name"] for s in info["settings"]} >= {"wss_enabled", "wss_port"}
    sim.set("a", activity_logging=False)
    assert sim.client("a").get("/info").json()["transfer_activity_reporting"] == "no"


def test_upload_setup_returns_one_spec_per_request_in_order(sim):
    b = sim.node("b")
    requests = [
        {"transfer_request": {"paths": [{"destination": "/Upload"}]}},
        {"transfer_request": {"paths": [{}], "destination_root": "/"}},
        {"transfer_request": {"paths": [{"destination": "/x"}], "remote_host": "dst.example"}},
    ]
    response = sim.client("b").post("/files/upload_setup", json={"transfer_requests": requests})
    assert response.status_code == 200
    specs = [item["transfer_spec"] for item in response.json()["transfer_specs"]]
    assert [s["destination_root"] for s in specs] == ["/Upload", "/", "/x"]
    for spec in specs:
        assert spec["direction"] == "send"
        assert spec["token"].startswith("AT") and spec["token"].endswith("TA")
        assert spec["remote_user"] == "xfer"
        assert spec["tags"] is None
        assert spec["sshfp"] is None
        assert spec["ssh_port"] == 33001
        assert spec["fasp_port"] == b.fasp_port
    assert specs[0]["remote_host"] == b.host
    assert specs[2]["remote_host"] == "dst.example"
    assert specs[0]["paths"] == [{"destination": "/Upload"}]
    assert len({s["token"] for s in specs}) == 3


def test_upload_setup_echoes_tags(sim):
    tags = {"aspera": {"xfer_retry": 10}, "myorch": {"job_id": "7"}}
    request = {"transfer_request": {"paths": [{"destination": "/u"}], "tags": tags}}
    response = sim.client("b").post("/files/upload_setup", json={"transfer_requests": [request]})
    assert response.json()["transfer_specs"][0]["transfer_spec"]["tags"] == tags


@pytest.mark.parametrize(
    "request_body",
    [
        {"paths": [{"destination": "../escape"}]},
        {"paths": [{"destination": "/a/../../escape"}]},
        {"paths": [{}], "destination_root": "/../.."},
        {"paths": [{}]},
        {"paths": [{"source": "only-a-source"}]},
    ],
)
def test_upload_setup_per_item_errors_come_with_http_200(sim, request_body):
    good = {"transfer_request": {"paths": [{"destination": "/ok"}]}}
    body = {"transfer_requests": [good, {"transfer_request": request_body}]}
    response = sim.client("b").post("/files/upload_setup", json=body)
    assert response.status_code == 200
    first, second = response.json()["transfer_specs"]
    assert "transfer_spec" in first
    assert set(second) == {"error"}
    assert second["error"]["code"] in (400, 403)
    assert set(second["error"]) == {"code", "reason", "user_message"}


def test_download_setup_binds_sources_and_answers_receive(sim):
    request = {"transfer_request": {"paths": [{"source": "/pub/a.bin"}], "source_root": ""}}
    response = sim.client("b").post("/files/download_setup", json={"transfer_requests": [request]})
    spec = response.json()["transfer_specs"][0]["transfer_spec"]
    assert spec["direction"] == "receive"
    assert spec["paths"] == [{"source": "/pub/a.bin"}]
    assert spec["destination_root"] == ""
    node = sim.node("b")
    claims = TokenIssuer(node.config.token_key, node.config.node_id).open(spec["token"])
    assert claims.sources == ("pub/a.bin",)
    assert claims.direction == "receive"
    assert claims.user == "xfer"


def test_upload_token_binds_node_user_direction_destination_and_expiry(sim):
    spec = sim.upload_spec("b", "/Upload/in", token_life_seconds=600)
    node = sim.node("b")
    claims = TokenIssuer(node.config.token_key, node.config.node_id).open(spec["token"])
    assert claims.node_id == node.config.node_id
    assert claims.user == "xfer"
    assert claims.direction == "send"
    assert claims.destinations == ("Upload/in",)
    assert 590 < claims.expires_at - claims.issued_at <= 600


@pytest.mark.parametrize(
    "body", [b"{not json", b"", b"[1, 2]", b'{"transfer_requests": []}', b'{"x": 1}']
)
def test_malformed_setup_body_is_a_400_generic_error(sim, body):
    response = sim.client("b").post("/files/upload_setup", content=body)
    assert_generic_error(response, 400)


def test_json_body_is_parsed_whatever_the_content_type(sim):
    body = b'{"transfer_requests":[{"transfer_request":{"paths":[{"destination":"/u"}]}}]}'
    response = sim.client("b").post(
        "/files/upload_setup", content=body, headers={"Content-Type": "text/plain"}
    )
    assert response.status_code == 200
    assert "transfer_spec" in response.json()["transfer_specs"][0]


@pytest.mark.parametrize("missing", ["direction", "paths", "remote_host", "token"])
def test_post_transfer_requires_the_four_fields(sim, missing):
    body = {"direction": "send", "paths": [{"source": "x"}], "remote_host": "h", "token": "t"}
    del body[missing]
    response = sim.client("a").post("/ops/transfers", json=body)
    error = assert_generic_error(response, 400)
    assert missing in error["user_message"]


@pytest.mark.parametrize(
    "patch",
    [
        {"direction": "sideways"},
        {"paths": []},
        {"paths": [{"destination": "no-source"}]},
        {"overwrite": "sometimes"},
        {"fasp_port": "many"},
        {"tags": "not-an-object"},
        {"tags": None},
        {"sshfp": None},
    ],
)
def test_post_transfer_rejects_invalid_specs(sim, patch):
    body = {"direction": "send", "paths": [{"source": "x"}], "remote_host": "h", "token": "t"}
    response = sim.client("a").post("/ops/transfers", json={**body, **patch})
    assert_generic_error(response, 400)


def test_unknown_transfer_is_404_and_delete_is_rejected(sim):
    assert_generic_error(sim.client("a").get("/ops/transfers/nope"), 404)
    sim.write("a", "f.txt", b"x")
    transfer = sim.upload("a", "b", ["f.txt"])
    response = sim.client("a").delete(f"/ops/transfers/{transfer['id']}")
    assert response.status_code in (404, 405)
    assert_generic_error(response, response.status_code)
    assert sim.transfer("a", transfer["id"])["status"] == "completed"


def test_browse_lists_a_directory_with_paging(sim):
    for name in ("c.txt", "a.txt", "b.txt"):
        sim.write("a", f"dir/{name}", name.encode())
    (sim.docroot("a") / "dir/sub").mkdir()
    client = sim.client("a")
    page = client.post("/files/browse", json={"path": "/dir", "count": 2, "skip": 1}).json()
    assert page["self"]["type"] == "directory"
    assert page["self"]["path"] == "/dir"
    assert page["total_count"] == 4
    assert page["item_count"] == 2
    assert [i["basename"] for i in page["items"]] == ["b.txt", "c.txt"]
    item = page["items"][0]
    assert item == {
        "path": "/dir/b.txt",
        "basename": "b.txt",
        "type": "file",
        "size": 5,
        "mtime": item["mtime"],
        "permissions": [{"name": "view"}, {"name": "edit"}, {"name": "delete"}],
    }
    assert item["mtime"].endswith("Z")
    file_self = client.post("/files/browse", json={"path": "/dir/a.txt"}).json()["self"]
    assert file_self["type"] == "file"


@pytest.mark.parametrize(("path", "status"), [("/missing", 404), ("/../..", 403)])
def test_browse_errors(sim, path, status):
    assert_generic_error(sim.client("a").post("/files/browse", json={"path": path}), status)


def test_files_info_gives_per_path_errors(sim):
    sim.write("a", "docs/sample.txt", b"x" * 445)
    body = {
        "paths": [
            {"path": "/docs"},
            {"path": "/docs/sample.txt"},
            {"path": "/docs/missing_file.txt"},
            {"path": "/../etc"},
        ]
    }
    answer = sim.client("a").post("/files/info", json=body).json()["paths"]
    assert answer[0]["type"] == "directory"
    assert answer[1]["size"] == 445
    assert answer[2] == {
        "path": "/docs/missing_file.txt",
        "error": {"code": 404, "reason": "Not Found", "user_message": "Path not found"},
    }
    assert answer[3]["error"]["code"] == 403


def test_access_key_transfers_are_tagged_with_the_key(sim):
    sim.write("a", "f.txt", b"x")
    spec = sim.upload_spec("b")
    body = {**spec, "paths": [{"source": "f.txt"}]}
    answer = sim.client("a", auth="key").post("/ops/transfers", json=body).json()
    key_id = sim.node("a").config.first_access_key[0]
    assert answer["start_spec"]["tags"] == {"aspera": {"node": {"access_key": key_id}}}


def test_basic_token_authorises_a_session(sim):
    sim.write("a", "f.txt", b"basic")
    b = sim.node("b")
    raw = f"{b.config.node_user}:{b.config.node_password}".encode()
    body = {
        "direction": "send",
        "remote_host": b.host,
        "remote_user": "xfer",
        "fasp_port": b.fasp_port,
        "token": "Basic " + base64.b64encode(raw).decode(),
        "destination_root": "/in",
        "paths": [{"source": "f.txt"}],
    }
    transfer_id = sim.client("a").post("/ops/transfers", json=body).json()["id"]
    transfer = sim.wait("a", transfer_id)
    assert transfer["status"] == "completed"
    assert transfer["start_spec"]["token_type"] == "basic_token"
    assert (sim.docroot("b") / "in/f.txt").read_bytes() == b"basic"


@pytest.mark.parametrize(
    ("paths", "root"),
    [
        ([{"destination": "*"}], "/"),
        ([{"destination": "/in/a"}, {"destination": "/in/b"}], "/in"),
    ],
)
def test_upload_setup_destination_root_from_paths(sim, paths, root):
    request = {"transfer_request": {"paths": paths}}
    answer = sim.client("b").post("/files/upload_setup", json={"transfer_requests": [request]})
    assert answer.json()["transfer_specs"][0]["transfer_spec"]["destination_root"] == root
