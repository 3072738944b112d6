"""Exact request shapes and error mapping of NodeClient (respx: where the simulator can't say)."""

from __future__ import annotations

import base64
import json

import httpx
import pytest
import respx

from orchestrator.domain.nodes import BasicAuth, BearerAuth, NodeConnection
from orchestrator.domain.transfers import PathPair, TransferStatus, UploadRequest
from orchestrator.errors import (
    ActivityLoggingDisabled,
    InvalidIterationToken,
    NodeAuthError,
    NodeError,
    NodeNotFound,
    NodeOutcomeUnknown,
    NodeProtocolError,
    NodeRequestRejected,
    NodeServerError,
    NodeUnreachable,
    TransferSetupError,
)
from orchestrator.nodeapi.client import NodeClient

BASE = "https://node-a.example:9092"
SECRET = "canary-s3cret-Zq9"
TOKEN = "ATV7_canary-token-material_TA"


def connection(**auth: object) -> NodeConnection:
    kind = auth.pop("kind", "node_user")
    if kind == "bearer":
        return NodeConnection.model_validate(
            {"name": "node-a", "base_url": BASE, "auth": {"kind": "bearer", **auth}}
        )
    return NodeConnection.model_validate(
        {"name": "node-a", "base_url": BASE, "auth": {"kind": kind, **auth}}
    )


@pytest.fixture
def client() -> NodeClient:
    conn = connection(username="nodeuser", password=SECRET)
    return NodeClient.connect(conn)


def spec_answer(**extra: object) -> dict[str, object]:
    spec = {
        "paths": [{}],
        "source_root": "",
        "destination_root": "/Upload",
        "token": TOKEN,
        "direction": "send",
        "tags": None,
        "sshfp": None,
        "remote_host": "node-b.internal",
        "remote_user": "xfer",
        "fasp_port": 33001,
        "ssh_port": 33001,
        "cipher": "aes-128",
        **extra,
    }
    return {"transfer_specs": [{"transfer_spec": spec}]}


@respx.mock
@pytest.mark.parametrize("kind", ["node_user", "access_key"])
def test_basic_auth_for_node_user_and_access_key(kind: str) -> None:
    route = respx.get(f"{BASE}/info").mock(return_value=httpx.Response(200, json={}))
    conn = connection(kind=kind, username="ak_or_user", password=SECRET)
    NodeClient.connect(conn).info()
    sent = route.calls.last.request
    expected = base64.b64encode(f"ak_or_user:{SECRET}".encode()).decode()
    assert sent.headers["Authorization"] == f"Basic {expected}"
    assert sent.headers["Accept"] == "application/json"
    assert "X-Aspera-AccessKey" not in sent.headers


@respx.mock
def test_bearer_sends_the_access_key_header() -> None:
    route = respx.get(f"{BASE}/info").mock(return_value=httpx.Response(200, json={}))
    conn = connection(kind="bearer", token=SECRET, access_key_id="ak123")
    NodeClient.connect(conn).info()
    sent = route.calls.last.request
    assert sent.headers["Authorization"] == f"Bearer {SECRET}"
    assert sent.headers["X-Aspera-AccessKey"] == "ak123"


def test_connection_rejects_credentials_in_the_url() -> None:
    with pytest.raises(ValueError, match="credentials"):
        NodeConnection.model_validate(
            {"name": "n", "base_url": "https://u:p@h", "auth": {"username": "u", "password": "p"}}
        )


def test_secrets_do_not_show_in_reprs() -> None:
    conn = connection(username="u", password=SECRET)
    bearer = connection(kind="bearer", token=SECRET, access_key_id="ak")
    assert SECRET not in repr(conn) and SECRET not in str(conn)
    assert SECRET not in repr(bearer) and SECRET not in repr(bearer.model_dump())
    assert isinstance(conn.auth, BasicAuth) and isinstance(bearer.auth, BearerAuth)


@respx.mock
def test_upload_setup_request_shape_and_spec(client: NodeClient) -> None:
    route = respx.post(f"{BASE}/files/upload_setup").mock(
        return_value=httpx.Response(200, json=spec_answer())
    )
    spec = client.upload_setup_one(
        UploadRequest(destination_root="/Upload", remote_host="10.1.2.3", token_life_seconds=600)
    )
    body = json.loads(route.calls.last.request.content)
    assert body == {
        "transfer_requests": [
            {
                "transfer_request": {
                    "paths": [{}],
                    "destination_root": "/Upload",
                    "remote_host": "10.1.2.3",
                    "token_life_seconds": 600,
                }
            }
        ]
    }
    assert spec.token.get_secret_value() == TOKEN
    assert spec.destination_root == "/Upload"


@respx.mock
def test_upload_setup_fills_an_empty_destination_root(client: NodeClient) -> None:
    respx.post(f"{BASE}/files/upload_setup").mock(
        return_value=httpx.Response(200, json=spec_answer(destination_root=""))
    )
    spec = client.upload_setup_one(UploadRequest(destination_root="/in"))
    assert spec.destination_root == "/in"


@respx.mock
def test_per_item_errors_in_a_200_at_either_position(client: NodeClient) -> None:
    answer = spec_answer()
    specs = answer["transfer_specs"]
    assert isinstance(specs, list)
    specs.append({"error": {"code": 403, "reason": "Forbidden", "user_message": "outside"}})
    specs.append({"transfer_spec": {"error": {"code": 404, "user_message": "Invalid path"}}})
    respx.post(f"{BASE}/files/upload_setup").mock(return_value=httpx.Response(200, json=answer))
    requests = [UploadRequest(destination_root=f"/d{i}") for i in range(3)]
    ok, outside, invalid = client.upload_setup(requests)
    assert not isinstance(ok, Exception)
    assert isinstance(outside, TransferSetupError) and outside.code == 403
    assert "outside" in str(outside) and "[1]" in outside.operation
    assert isinstance(invalid, TransferSetupError) and "Invalid path" in str(invalid)


@respx.mock
def test_upload_setup_one_raises_the_item_error(client: NodeClient) -> None:
    respx.post(f"{BASE}/files/upload_setup").mock(
        return_value=httpx.Response(200, json={"transfer_specs": [{"error": {"code": 400}}]})
    )
    with pytest.raises(TransferSetupError):
        client.upload_setup_one(UploadRequest(destination_root="/x"))


@respx.mock
def test_start_transfer_posts_a_bare_spec_without_nulls(client: NodeClient) -> None:
    respx.post(f"{BASE}/files/upload_setup").mock(
        return_value=httpx.Response(200, json=spec_answer())
    )
    route = respx.post(f"{BASE}/ops/transfers").mock(
        return_value=httpx.Response(200, json={"id": "tr-1", "status": "waiting"})
    )
    grant = client.upload_setup_one(UploadRequest(destination_root="/Upload"))
    spec = grant.for_source(
        [PathPair(source="a.bin"), PathPair(source="dir1", destination="renamed")],
        source_root="/outgoing",
        tags={"orchestrator": {"attempt": "u-1"}},
        remote_host="10.9.9.9",
        options={"overwrite": "diff", "resume_policy": "sparse_csum"},
    )
    assert client.start_transfer(spec) == "tr-1"
    body = json.loads(route.calls.last.request.content)
    assert "transfer_requests" not in body, "the POST body is a bare spec (node-api.md §3.2)"
    assert body["paths"] == [{"source": "a.bin"}, {"source": "dir1", "destination": "renamed"}]
    assert body["destination_root"] == "/Upload"
    assert body["source_root"] == "/outgoing"
    assert body["remote_host"] == "10.9.9.9"
    assert body["token"] == TOKEN
    assert body["tags"] == {"orchestrator": {"attempt": "u-1"}}
    assert body["overwrite"] == "diff"
    assert "sshfp" not in body and None not in body.values()


@respx.mock
def test_a_200_without_id_is_an_unknown_outcome(client: NodeClient) -> None:
    respx.post(f"{BASE}/files/upload_setup").mock(
        return_value=httpx.Response(200, json=spec_answer())
    )
    respx.post(f"{BASE}/ops/transfers").mock(return_value=httpx.Response(200, json={}))
    spec = client.upload_setup_one(UploadRequest(destination_root="/Upload"))
    with pytest.raises(NodeOutcomeUnknown):
        client.start_transfer(spec.for_source([PathPair(source="a")]))


@respx.mock
def test_cancel_uses_the_cancel_method(client: NodeClient) -> None:
    route = respx.route(method="CANCEL", url=f"{BASE}/ops/transfers/tr-1").mock(
        return_value=httpx.Response(204)
    )
    client.cancel_transfer("tr-1")
    assert route.calls.last.request.method == "CANCEL"
    assert route.calls.last.request.content == b""


@respx.mock
def test_modify_sends_only_what_changes(client: NodeClient) -> None:
    route = respx.put(f"{BASE}/ops/transfers/tr-1").mock(
        return_value=httpx.Response(200, json={"id": "tr-1"})
    )
    client.modify_transfer("tr-1", target_rate_kbps=50000)
    client.pause_transfer("tr-1")
    client.resume_transfer("tr-1")
    bodies = [json.loads(c.request.content) for c in route.calls]
    assert bodies == [{"target_rate_kbps": 50000}, {"status": "paused"}, {"status": "running"}]
    with pytest.raises(ValueError, match="needs a status or a rate"):
        client.modify_transfer("tr-1")


@respx.mock
def test_list_query_and_tag_encoding(client: NodeClient) -> None:
    route = respx.get(f"{BASE}/ops/transfers").mock(return_value=httpx.Response(200, json=[]))
    client.list_transfers(
        "41", active_only=True, tag="orchestrator.attempt=u-1", view="summary", count=50
    )
    url = route.calls.last.request.url
    assert "tag=orchestrator.attempt%3Du-1" in str(url), "= in a tag value goes as %3D (§4.1)"
    assert url.params["iteration_token"] == "41"
    assert url.params["active_only"] == "true"
    assert url.params["view"] == "summary"
    assert url.params["count"] == "50"


@respx.mock
def test_paging_follows_link_then_stops_on_the_same_token(client: NodeClient) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        token = request.url.params.get("iteration_token")
        pages = {
            None: ([{"id": "a", "status": "running"}], "10"),
            "10": ([{"id": "a", "status": "completed"}, {"id": "b", "status": "waiting"}], "12"),
            "12": ([], "12"),
        }
        items, nxt = pages[token]
        link = f'<{BASE}/ops/transfers?iteration_token={nxt}>; rel="next"'
        return httpx.Response(200, json=items, headers={"Link": link})

    route = respx.get(f"{BASE}/ops/transfers").mock(side_effect=answer)
    feed = client.list_transfers()
    assert feed.next_token == "12"
    assert {t.remote_id: t.status for t in feed.transfers} == {
        "a": TransferStatus.COMPLETED,
        "b": TransferStatus.WAITING,
    }
    assert route.call_count == 3


@respx.mock
@pytest.mark.parametrize(
    ("status", "body", "error", "retryable"),
    [
        (401, {"error": {"code": 401, "user_message": "bad credentials"}}, NodeAuthError, False),
        (403, {}, NodeAuthError, False),
        (
            404,
            {"error": {"user_message": "Transfer activity logging disabled"}},
            ActivityLoggingDisabled,
            False,
        ),
        (404, {"error": {"code": 404, "reason": "Not Found"}}, NodeNotFound, False),
        (400, {"error": {"user_message": "Invalid iteration_token"}}, InvalidIterationToken, False),
        (400, {"error": {"description": "bad spec"}}, NodeRequestRejected, False),
        (429, {}, NodeRequestRejected, True),
        (500, {}, NodeServerError, True),
        (503, {"error": {"internal_message": "queue full"}}, NodeServerError, True),
        (
            200,
            {"error": {"code": 500, "user_message": "hidden failure"}},
            NodeRequestRejected,
            False,
        ),
    ],
)
def test_error_answers_map_to_the_error_tree(
    client: NodeClient, status: int, body: object, error: type[NodeError], retryable: bool
) -> None:
    respx.get(f"{BASE}/ops/transfers/tr-1").mock(return_value=httpx.Response(status, json=body))
    with pytest.raises(error) as caught:
        client.get_transfer("tr-1")
    err = caught.value
    assert err.retryable is retryable
    assert err.node == "node-a"
    assert err.operation == "get_transfer"


@respx.mock
def test_error_text_variants_are_all_read(client: NodeClient) -> None:
    for key in ("user_message", "description", "internal_message", "reason"):
        respx.get(f"{BASE}/info").mock(
            return_value=httpx.Response(400, json={"error": {key: f"text in {key}"}})
        )
        with pytest.raises(NodeRequestRejected, match=f"text in {key}"):
            client.info()


@respx.mock
def test_empty_200_on_get_transfer_is_unknown(client: NodeClient) -> None:
    respx.get(f"{BASE}/ops/transfers/tr-1").mock(return_value=httpx.Response(200, content=b""))
    assert client.get_transfer("tr-1").status is TransferStatus.UNKNOWN


@respx.mock
def test_json_is_parsed_whatever_the_content_type(client: NodeClient) -> None:
    respx.get(f"{BASE}/ops/transfers/tr-1").mock(
        return_value=httpx.Response(
            200,
            content=b'{"id":"tr-1","status":"completed"}',
            headers={"Content-Type": "application/x-javascript"},
        )
    )
    assert client.get_transfer("tr-1").status is TransferStatus.COMPLETED


@respx.mock
def test_non_json_answer_is_a_protocol_error(client: NodeClient) -> None:
    respx.get(f"{BASE}/info").mock(return_value=httpx.Response(200, content=b"<html>proxy</html>"))
    with pytest.raises(NodeProtocolError, match="not JSON"):
        client.info()


@respx.mock
def test_list_body_not_an_array_is_a_protocol_error(client: NodeClient) -> None:
    respx.get(f"{BASE}/ops/transfers").mock(return_value=httpx.Response(200, json={"a": 1}))
    with pytest.raises(NodeProtocolError):
        client.list_transfers()


@respx.mock
def test_connect_failure_is_unreachable_and_read_timeout_is_unknown(client: NodeClient) -> None:
    respx.get(f"{BASE}/info").mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(NodeUnreachable) as unreachable:
        client.info()
    assert unreachable.value.retryable
    respx.post(f"{BASE}/ops/transfers").mock(side_effect=httpx.ReadTimeout("slow"))
    respx.post(f"{BASE}/files/upload_setup").mock(
        return_value=httpx.Response(200, json=spec_answer())
    )
    spec = client.upload_setup_one(UploadRequest(destination_root="/u"))
    with pytest.raises(NodeOutcomeUnknown) as unknown:
        client.start_transfer(spec.for_source([PathPair(source="a")]))
    assert unknown.value.retryable
    assert TOKEN not in str(unknown.value)
    assert unknown.value.__cause__ is None, "httpx internals (and request data) do not leak"


@respx.mock
def test_odd_transfer_ids_stay_one_path_segment(client: NodeClient) -> None:
    route = respx.get(url__regex=rf"{BASE}/ops/transfers/.*").mock(
        return_value=httpx.Response(200, json={"id": "x", "status": "running"})
    )
    client.get_transfer("../../admin")
    assert route.calls.last.request.url.raw_path == b"/ops/transfers/..%2F..%2Fadmin"


@respx.mock
def test_browse_pages_with_skip_until_total(client: NodeClient) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        skip = json.loads(request.content)["skip"]
        items = [
            {"path": f"/d/f{i}", "basename": f"f{i}", "type": "file", "size": i}
            for i in range(skip, min(skip + 2, 5))
        ]
        return httpx.Response(200, json={"items": items, "item_count": 2, "total_count": 5})

    respx.post(f"{BASE}/files/browse").mock(side_effect=answer)
    entries = client.browse("/d", page_size=2)
    assert [e.name for e in entries] == ["f0", "f1", "f2", "f3", "f4"]
