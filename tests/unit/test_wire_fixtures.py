"""The real and spec-derived samples of node-api.md §10 parse with nodeapi's models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from orchestrator.domain.transfers import TransferSpec, TransferStatus
from orchestrator.errors import ActivityLoggingDisabled, NodeError
from orchestrator.nodeapi.client import NodeClient
from orchestrator.nodeapi.wire import WireInfo, WirePathList, WireSetupResponse, WireTransfer

FIXTURES = Path(__file__).parent.parent / "fixtures" / "nodeapi"


def load(name: str) -> Any:
    return json.loads((FIXTURES / f"{name}.json").read_text())


@pytest.mark.parametrize(
    "name",
    [
        "f1_download_setup",
        "f2_upload_setup_lion",
        "f3_download_setup_normalised",
        "f4_shares_download_setup",
    ],
)
def test_setup_responses_give_a_spec_with_its_token(name: str) -> None:
    parsed = WireSetupResponse.model_validate(load(name))
    (item,) = parsed.transfer_specs
    assert item.item_error() is None
    spec = TransferSpec.model_validate(item.transfer_spec)
    raw = load(name)["transfer_specs"][0]["transfer_spec"]
    assert spec.token.get_secret_value() == raw["token"]
    assert spec.direction in {"send", "receive"}
    assert spec.remote_host == raw["remote_host"]
    assert raw["token"] not in repr(spec), "the token must not show in a repr"
    assert raw["token"] not in str(spec.model_dump())


def test_fields_the_model_does_not_name_are_kept_and_nulls_dropped_on_post() -> None:
    raw = load("f3_download_setup_normalised")["transfer_specs"][0]["transfer_spec"]
    spec = TransferSpec.model_validate(raw)
    assert spec.extras()["rate_policy_allowed"] == "fixed"
    body = spec.to_body()
    assert "sshfp" not in body, "null sshfp must be stripped before POST (node-api.md §3.2)"
    assert "tags" not in body
    assert body["http_fallback"] is True
    assert body["token"] == raw["token"]


def test_shares_tags_survive_and_merge_with_ours() -> None:
    raw = load("f4_shares_download_setup")["transfer_specs"][0]["transfer_spec"]
    spec = TransferSpec.model_validate(raw)
    posted = spec.for_source([], tags={"orchestrator": {"attempt": "a-1"}}).to_body()
    assert posted["tags"]["aspera"]["shares"]["user"] == "elvisfan"
    assert posted["tags"]["orchestrator"] == {"attempt": "a-1"}


def test_full_transfer_object_becomes_a_snapshot() -> None:
    snapshot = WireTransfer.model_validate(load("f8_transfer_full")).to_snapshot()
    assert snapshot.remote_id == "bafc72b8-366c-4501-8095-47208183d6b8"
    assert snapshot.status is TransferStatus.RUNNING
    assert snapshot.bytes_transferred == 26
    assert snapshot.bytes_expected == 26
    assert snapshot.files_expected == 1
    assert snapshot.files_completed == 1
    assert snapshot.error is None
    assert snapshot.tag("aspera.xfer_retry") == 150
    assert snapshot.ended_at is None, "a running transfer has no end yet"
    assert snapshot.started_at is not None


def test_abbreviated_page_parses() -> None:
    (item,) = load("f7_ops_transfers_page")
    snapshot = WireTransfer.model_validate(item).to_snapshot()
    assert snapshot.status is TransferStatus.COMPLETED
    assert snapshot.files_failed == 0


def test_info_with_placeholder_time_parses() -> None:
    info = WireInfo.model_validate(load("f9_info")).to_info()
    assert info.node_id == "2bbdcc39-f789-4d47-8163-6767fc14f421"
    assert info.transfer_user == "xfer"
    assert info.activity_logging is False
    assert info.current_time is None, "the fixture's time is a placeholder, not a date"
    assert info.capabilities["page"] is True
    assert info.settings["wss_port"] == 443


def test_files_info_per_path_error_is_kept() -> None:
    parsed = WirePathList.model_validate(load("f6_files_info"))
    errors = [p for p in parsed.paths if p.error is not None]
    assert [p.path for p in errors] == ["/Users/aspera/Documents/missing_file.txt"]
    assert errors[0].error is not None
    assert errors[0].error.text() == "Path not found"


def test_generic_error_body_maps_to_activity_logging_disabled() -> None:
    body = load("f5_error_body")
    transport = httpx.MockTransport(lambda request: httpx.Response(404, json=body))
    client = NodeClient(httpx.Client(transport=transport, base_url="https://n"), node="n")
    with pytest.raises(ActivityLoggingDisabled) as caught:
        client.list_transfers()
    assert isinstance(caught.value, NodeError)
    assert caught.value.status == 404
    assert "Transfer activity logging disabled" in str(caught.value)


@pytest.mark.parametrize(
    ("error_code", "expected"), [(19, 19), ("19", 19), ("", 0), (None, 0), ("x", 0)]
)
def test_error_code_as_int_or_string(error_code: object, expected: int) -> None:
    snapshot = WireTransfer.model_validate(
        {"id": "t", "status": "failed", "error_code": error_code, "error_desc": "boom"}
    ).to_snapshot()
    assert snapshot.error is not None
    assert snapshot.error.code == expected


def test_file_error_text_under_either_name() -> None:
    transfer = WireTransfer.model_validate(
        {
            "id": "t",
            "status": "failed",
            "files": [
                {"path": "/a", "status": "failed", "error_code": 4, "error_description": "gone"},
                {"path": "/b", "status": "failed", "error_code": 4, "error_desc": "gone too"},
                {"path": "/c", "status": "completed"},
            ],
        }
    )
    assert transfer.to_snapshot().files_failed == 2
    assert transfer.files is not None
    assert transfer.files[0].error_description == "gone"
    assert transfer.files[1].error_desc == "gone too"
    texts = [f.to_file().error_text for f in transfer.files]
    assert texts == ["gone", "gone too", ""]


def test_the_full_transfer_object_lists_its_files() -> None:
    transfer = WireTransfer.model_validate(load("f8_transfer_full"))
    (item,) = [f.to_file() for f in transfer.files or []]
    assert (item.path, item.status, item.size, item.bytes_written) == (
        "/Upload/data_file.bin",
        "completed",
        26,
        26,
    )
    assert item.error_code == 0 and item.error_text == ""


def test_session_error_explains_a_transfer_without_its_own() -> None:
    snapshot = WireTransfer.model_validate(
        {
            "id": "t",
            "status": "partially_completed",
            "error_code": 0,
            "sessions": [{"id": "s", "status": "failed", "error_code": 16, "error_desc": "lost"}],
        }
    ).to_snapshot()
    assert snapshot.status is TransferStatus.RETRYING
    assert snapshot.error is not None
    assert snapshot.error.code == 16
    assert snapshot.error.retryable
