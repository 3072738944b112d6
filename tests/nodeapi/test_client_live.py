"""NodeClient against two hstssim nodes over real HTTP: real transfers, real refusals."""

from __future__ import annotations

import os
import time
import uuid

import pytest

from orchestrator.domain.ascp import ErrorClass
from orchestrator.domain.transfers import (
    DownloadRequest,
    PathPair,
    TransferSnapshot,
    TransferStatus,
    UploadRequest,
)
from orchestrator.errors import (
    ActivityLoggingDisabled,
    InvalidIterationToken,
    NodeAuthError,
    NodeNotFound,
    NodeOutcomeUnknown,
    NodeServerError,
    TransferSetupError,
)
from orchestrator.nodeapi.client import NodeClient
from tests.nodeapi.conftest import Pair
from tests.support.sim import client_for, read_tree, wait_for, write_tree


def start_copy(
    pair: Pair,
    sources: list[str],
    *,
    source_root: str = "/outgoing",
    destination_root: str = "/incoming",
    grant_from: NodeClient | None = None,
    token_life_seconds: int | None = None,
    options: dict[str, object] | None = None,
) -> tuple[str, str]:
    """upload_setup on B (or grant_from), POST on A; returns (remote id, attempt tag)."""
    granting = grant_from or pair.client_b
    grant = granting.upload_setup_one(
        UploadRequest(destination_root=destination_root, token_life_seconds=token_life_seconds)
    )
    attempt = str(uuid.uuid4())
    spec = grant.for_source(
        [PathPair(source=s) for s in sources],
        source_root=source_root,
        tags={"orchestrator": {"attempt": attempt}},
        remote_host=pair.b.host,
        options={"fasp_port": pair.b.fasp_port, **(options or {})},
    )
    return pair.client_a.start_transfer(spec), attempt


def follow_until_terminal(client: NodeClient, remote_id: str) -> TransferSnapshot:
    """Follow A's change feed (never GET by id) until the transfer ends."""
    cursor: dict[str, str | None] = {"token": None}
    latest: dict[str, TransferSnapshot] = {}

    def step() -> TransferSnapshot | None:
        feed = client.list_transfers(cursor["token"])
        cursor["token"] = feed.next_token
        for transfer in feed.transfers:
            latest[transfer.remote_id] = transfer
        found = latest.get(remote_id)
        return found if found and found.status.is_terminal else None

    return wait_for(step, timeout=30)


def test_directory_copy_is_byte_identical(pair: Pair) -> None:
    files = {
        "job1/empty.txt": b"",
        "job1/one.bin": b"x",
        "job1/small.txt": b"hello aspera\n" * 77,
        "job1/big.bin": os.urandom(3 * 1024 * 1024 + 17),
        "job1/sub/deeper/leaf.dat": os.urandom(40_000),
    }
    write_tree(pair.root_a / "outgoing", files)
    remote_id, attempt = start_copy(pair, ["job1"])

    final = follow_until_terminal(pair.client_a, remote_id)

    assert final.status is TransferStatus.COMPLETED, final.error
    assert final.error is None
    assert final.files_completed == len(files)
    assert final.bytes_transferred == sum(len(d) for d in files.values())
    copied = read_tree(pair.root_b / "incoming")
    assert copied == files, "every file arrives byte-identical, in the same tree"
    assert not list((pair.root_b / "incoming").rglob("*.partial"))
    assert pair.client_a.get_transfer(remote_id).status is TransferStatus.COMPLETED
    (tagged,) = pair.client_a.find_transfers_by_tag("orchestrator.attempt", attempt)
    assert tagged.remote_id == remote_id
    requests = pair.admin_a.counters()["requests"]
    assert requests["POST /ops/transfers"] == 1
    assert pair.admin_b.counters()["requests"]["POST /files/upload_setup"] == 1


def test_info_ping_browse_and_files_info(pair: Pair) -> None:
    write_tree(pair.root_a / "browse", {"a.txt": b"aa", "d/b.txt": b"bbb"})
    pair.client_a.ping()
    info = pair.client_a.info()
    assert info.transfer_user == pair.a.config.transfer_user
    assert info.node_id == pair.a.config.node_id
    assert info.activity_logging is True
    entries = {e.name: e for e in pair.client_a.browse("/browse")}
    assert entries["a.txt"].size == 2
    assert entries["a.txt"].type == "file"
    assert entries["d"].type == "directory"
    found, missing = pair.client_a.files_info(["/browse/a.txt", "/browse/nope.txt"])
    assert not isinstance(found, Exception)
    assert found.size == 2
    assert isinstance(missing, NodeNotFound)


def test_download_setup_returns_a_receive_spec(pair: Pair) -> None:
    write_tree(pair.root_a / "dl", {"f.bin": b"123"})
    (result,) = pair.client_a.download_setup(
        [DownloadRequest(sources=(PathPair(source="/dl/f.bin"),))]
    )
    assert not isinstance(result, Exception)
    assert result.direction == "receive"
    token = result.token.get_secret_value()
    assert token.startswith("AT")
    assert token.endswith("TA")


def test_access_key_and_bearer_auth(pair: Pair) -> None:
    ak, secret = next(iter(pair.a.config.access_keys.items()))
    with client_for(pair.a, auth={"kind": "access_key", "username": ak, "password": secret}) as c:
        assert c.info().node_id == pair.a.config.node_id


def test_wrong_password_is_an_auth_error(pair: Pair) -> None:
    bad = client_for(pair.a, auth={"username": pair.a.config.node_user, "password": "wrong"})
    with bad, pytest.raises(NodeAuthError) as caught:
        bad.info()
    assert caught.value.status == 401
    assert "wrong" not in str(caught.value)


def test_token_from_the_wrong_node_fails_with_auth_and_writes_nothing(pair: Pair) -> None:
    write_tree(pair.root_a / "outgoing", {"foreign/f.txt": b"data"})
    remote_id, _ = start_copy(
        pair, ["foreign"], grant_from=pair.client_a, destination_root="/foreign-dest"
    )
    final = follow_until_terminal(pair.client_a, remote_id)
    assert final.status is TransferStatus.FAILED
    assert final.error is not None
    assert final.error.code == 19
    assert final.error.error_class is ErrorClass.CONFIGURATION
    assert not (pair.root_b / "foreign-dest").exists()


def test_expired_token_is_refused(pair: Pair) -> None:
    write_tree(pair.root_a / "outgoing", {"late/f.txt": b"late"})
    grant = pair.client_b.upload_setup_one(
        UploadRequest(destination_root="/late-dest", token_life_seconds=1)
    )
    time.sleep(1.6)
    spec = grant.for_source(
        [PathPair(source="late")],
        source_root="/outgoing",
        remote_host=pair.b.host,
        options={"fasp_port": pair.b.fasp_port},
    )
    final = follow_until_terminal(pair.client_a, pair.client_a.start_transfer(spec))
    assert final.status is TransferStatus.FAILED
    assert final.error is not None
    assert final.error.code == 19
    assert not (pair.root_b / "late-dest").exists()


@pytest.mark.parametrize("root", ["/../../etc", "/incoming/../../../tmp"])
def test_upload_setup_refuses_a_destination_outside_the_docroot(pair: Pair, root: str) -> None:
    with pytest.raises(TransferSetupError):
        pair.client_b.upload_setup_one(UploadRequest(destination_root=root))


@pytest.mark.parametrize("source", ["../../../etc/passwd", "/../../etc/hostname"])
def test_source_outside_the_docroot_fails_and_moves_nothing(pair: Pair, source: str) -> None:
    remote_id, _ = start_copy(pair, [source], destination_root="/escape-dest")
    final = follow_until_terminal(pair.client_a, remote_id)
    assert final.status is TransferStatus.FAILED
    assert final.error is not None
    assert final.error.code == 41
    assert not (pair.root_b / "escape-dest").exists()


def test_missing_source_fails_with_no_such_file(pair: Pair) -> None:
    remote_id, _ = start_copy(pair, ["does-not-exist"], destination_root="/missing-dest")
    final = follow_until_terminal(pair.client_a, remote_id)
    assert final.error is not None
    assert final.error.code == 4


def test_activity_logging_off_is_recognised(pair: Pair) -> None:
    pair.admin_a.settings(activity_logging=False)
    with pytest.raises(ActivityLoggingDisabled):
        pair.client_a.list_transfers()
    assert pair.client_a.info().activity_logging is False


def test_restart_invalidates_the_cursor(pair: Pair) -> None:
    write_tree(pair.root_a / "outgoing", {"r/f.txt": b"r"})
    remote_id, _ = start_copy(pair, ["r"], destination_root="/restart-dest")
    follow_until_terminal(pair.client_a, remote_id)
    token = pair.client_a.list_transfers().next_token
    assert token is not None
    pair.admin_a.restart()
    with pytest.raises(InvalidIterationToken):
        pair.client_a.list_transfers(token)
    pair.client_a.list_transfers()  # starting again without a token works


def test_invalid_iteration_token_fault(pair: Pair) -> None:
    pair.admin_a.fault(kind="invalid_iteration_token")
    with pytest.raises(InvalidIterationToken):
        pair.client_a.list_transfers("1")


def test_expired_record_is_not_found(pair: Pair) -> None:
    write_tree(pair.root_a / "outgoing", {"x/f.txt": b"x"})
    remote_id, _ = start_copy(pair, ["x"], destination_root="/expire-dest")
    follow_until_terminal(pair.client_a, remote_id)
    pair.admin_a.expire(0)
    with pytest.raises(NodeNotFound):
        pair.client_a.get_transfer(remote_id)


def test_service_unavailable_on_post_is_retryable(pair: Pair) -> None:
    pair.admin_a.fault(kind="http_error", endpoint="POST /ops/transfers", status=503)
    write_tree(pair.root_a / "outgoing", {"u/f.txt": b"u"})
    with pytest.raises(NodeServerError) as caught:
        start_copy(pair, ["u"], destination_root="/u-dest")
    assert caught.value.retryable
    assert pair.admin_a.counters()["transfers_created"] == 0, "a refused POST creates nothing"


def test_empty_error_body_is_a_server_error(pair: Pair) -> None:
    pair.admin_a.fault(kind="empty_error", endpoint="GET /info", status=500)
    with pytest.raises(NodeServerError):
        pair.client_a.info()


def test_ambiguous_post_is_resolved_by_tag_without_a_second_post(pair: Pair) -> None:
    write_tree(pair.root_a / "outgoing", {"amb/f.txt": b"ambiguous"})
    before = len(pair.admin_a.transfers())
    pair.admin_a.fault(kind="hang", endpoint="POST /ops/transfers", seconds=2, after_effect=True)
    impatient = client_for(pair.a, read_timeout=0.5)
    grant = pair.client_b.upload_setup_one(UploadRequest(destination_root="/amb-dest"))
    attempt = str(uuid.uuid4())
    spec = grant.for_source(
        [PathPair(source="amb")],
        source_root="/outgoing",
        tags={"orchestrator": {"attempt": attempt}},
        remote_host=pair.b.host,
        options={"fasp_port": pair.b.fasp_port},
    )
    with impatient, pytest.raises(NodeOutcomeUnknown):
        impatient.start_transfer(spec)
    (found,) = wait_for(
        lambda: pair.client_a.find_transfers_by_tag("orchestrator.attempt", attempt)
    )
    assert len(pair.admin_a.transfers()) == before + 1, "exactly one transfer exists"
    final = follow_until_terminal(pair.client_a, found.remote_id)
    assert final.status is TransferStatus.COMPLETED
    assert (pair.root_b / "amb-dest" / "amb" / "f.txt").read_bytes() == b"ambiguous"


def test_empty_200_on_get_is_unknown(pair: Pair) -> None:
    write_tree(pair.root_a / "outgoing", {"e/f.txt": b"e"})
    remote_id, _ = start_copy(pair, ["e"], destination_root="/e-dest")
    pair.admin_a.fault(kind="empty_200", endpoint="GET /ops/transfers/{id}")
    assert pair.client_a.get_transfer(remote_id).status is TransferStatus.UNKNOWN
    follow_until_terminal(pair.client_a, remote_id)


@pytest.mark.parametrize(
    ("code", "expected"), [(36, ErrorClass.RETRYABLE), (19, ErrorClass.CONFIGURATION)]
)
def test_failure_codes_are_classified(pair: Pair, code: int, expected: ErrorClass) -> None:
    pair.admin_a.settings(max_retries=0)
    try:
        pair.admin_a.fault(kind="fail_transfers", error_code=code)
        write_tree(pair.root_a / "outgoing", {f"c{code}/f.txt": b"c"})
        remote_id, _ = start_copy(pair, [f"c{code}"], destination_root=f"/c{code}-dest")
        final = follow_until_terminal(pair.client_a, remote_id)
    finally:
        pair.admin_a.settings(max_retries=3)
    assert final.status is TransferStatus.FAILED
    assert final.error is not None
    assert final.error.code == code
    assert final.error.text, "the node's text is kept"
    assert final.error.error_class is expected


def test_failed_with_code_zero_is_unexplained(pair: Pair) -> None:
    pair.admin_a.fault(kind="failed_code_zero")
    write_tree(pair.root_a / "outgoing", {"z/f.txt": b"z"})
    remote_id, _ = start_copy(pair, ["z"], destination_root="/z-dest")
    final = follow_until_terminal(pair.client_a, remote_id)
    assert final.status is TransferStatus.FAILED
    assert final.error is not None
    assert final.error.code == 0
    assert final.error.error_class is ErrorClass.UNEXPLAINED


def test_pause_resume_rate_and_cancel(pair: Pair) -> None:
    write_tree(pair.root_a / "outgoing", {"slow/big.bin": os.urandom(2_000_000)})
    remote_id, _ = start_copy(
        pair, ["slow"], destination_root="/slow-dest", options={"target_rate_kbps": 800}
    )
    client = pair.client_a
    wait_for(lambda: client.get_transfer(remote_id).status is TransferStatus.RUNNING)
    client.pause_transfer(remote_id)
    wait_for(lambda: client.get_transfer(remote_id).status is TransferStatus.PAUSED)
    client.resume_transfer(remote_id)
    wait_for(lambda: client.get_transfer(remote_id).status is TransferStatus.RUNNING)
    client.modify_transfer(remote_id, target_rate_kbps=400)
    assert pair.admin_a.counters()["requests"]["PUT /ops/transfers/{id}"] == 3
    client.cancel_transfer(remote_id)
    final = wait_for(
        lambda: (t := client.get_transfer(remote_id)).status.is_terminal and t, timeout=10
    )
    assert final.status is TransferStatus.CANCELED
    assert final.bytes_transferred < 2_000_000
    assert not (pair.root_b / "slow-dest" / "slow" / "big.bin").exists()


def test_cancel_of_an_unknown_transfer_is_not_found(pair: Pair) -> None:
    with pytest.raises(NodeNotFound):
        pair.client_a.cancel_transfer(str(uuid.uuid4()))


def test_dropped_connection_resumes_on_the_node_and_completes(pair: Pair) -> None:
    data = os.urandom(1_500_000)
    write_tree(pair.root_a / "outgoing", {"drop/f.bin": data})
    pair.admin_a.fault(kind="drop_connection", after_bytes=600_000)
    remote_id, _ = start_copy(pair, ["drop"], destination_root="/drop-dest")
    final = follow_until_terminal(pair.client_a, remote_id)
    assert final.status is TransferStatus.COMPLETED
    assert (pair.root_b / "drop-dest" / "drop" / "f.bin").read_bytes() == data
