"""SSH endpoints: a destination with no Node API, reached by its transfer user's SSH password or
private key, with real bytes between two hstssim nodes (node-b plays the SSH-only HSTS)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from pydantic import SecretStr

from hstssim.cluster import SimCluster
from orchestrator.api.app import create_app
from orchestrator.cli import main
from orchestrator.cli import nodes as cli_nodes
from orchestrator.domain.jobs import JobSpec
from orchestrator.domain.sshendpoints import SshEndpointRegistration
from orchestrator.domain.states import JobState
from orchestrator.services.conveyor.jobs import JobRejected, create_job, get_job
from orchestrator.services.nodes.health import check_all
from orchestrator.services.nodes.registry import register_ssh_endpoint, update_node
from orchestrator.services.tokens import Scope, create_token
from orchestrator.services.views.jobs import attempts_of
from tests.services.conftest import Stack
from tests.support.sim import fast_configs, read_tree, write_tree
from tests.support.stack import settle

PASSWORD = "canary-xfer-Pw-7719"
KEY = Ed25519PrivateKey.generate()
PRIVATE_PEM = KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()
PUBLIC = (
    KEY.public_key()
    .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    .decode()
)
KEY_CANARY = PRIVATE_PEM.splitlines()[1]  # the key's base64 body: never anywhere but the DB


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimCluster]:
    """node-a, and node-b whose transfer user also logs in by SSH password or key."""
    a, b = fast_configs(tmp_path_factory.mktemp("sim"))
    b.ssh_password = PASSWORD
    b.ssh_authorized_keys = [f"{PUBLIC} orchestrator@test"]
    with SimCluster.start([a, b]) as started:
        yield started


def endpoint(stack: Stack, name: str, **credential: Any) -> int:
    """Register node-b's data plane as an SSH endpoint (its SSH port) with this credential."""
    b = stack.b
    data: dict[str, Any] = {
        "name": name,
        "ssh_host": b.host,
        "ssh_port": b.fasp_port,
        "ssh_user": b.config.transfer_user,
        "sshfp": b.config.ssh_fingerprint,
        **credential,
    }
    return register_ssh_endpoint(stack.ctx, SshEndpointRegistration.model_validate(data))


def job_to(stack: Stack, destination: str, folder: str) -> str:
    spec = {
        "source_node": "node-a",
        "source_paths": [folder],
        "destination_node": destination,
        "destination_path": f"in-{folder}",
    }
    return create_job(stack.ctx, JobSpec.model_validate(spec)).job.id


def test_password_and_key_jobs_arrive_byte_identical_without_upload_setup(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sent: list[tuple[str, tuple[Any, ...]]] = []
    take = stack.tasks.take

    def recorded() -> list[tuple[str, tuple[Any, ...]]]:
        taken = take()
        sent.extend(taken)
        return taken

    stack.tasks.take = recorded  # type: ignore[method-assign]
    endpoint(stack, "ssh-pw", ssh_password=SecretStr(PASSWORD))
    endpoint(stack, "ssh-key", ssh_private_key=SecretStr(PRIVATE_PEM))
    # Both endpoints are node-b's one data plane: each job writes its own folder there (two
    # sessions writing one file fail with "cannot rename a partial file", as on a real HSTS).
    files = {"p/a.bin": os.urandom(200_000), "p/sub/b.txt": b"hello\n"}
    by_key_files = {"k/c.bin": os.urandom(150_000)}
    write_tree(stack.root_a, files | by_key_files)
    by_password = job_to(stack, "ssh-pw", "p")
    by_key = job_to(stack, "ssh-key", "k")

    states = settle(stack.ctx, stack.tasks, [stack.a_id])

    assert states[by_password] == JobState.COMPLETED
    assert states[by_key] == JobState.COMPLETED
    assert read_tree(stack.root_b / "in-p") == files
    assert read_tree(stack.root_b / "in-k") == by_key_files
    counters_b = stack.admin_b.counters()["requests"]
    assert counters_b.get("POST /files/upload_setup", 0) == 0, "no Node API call on the endpoint"
    assert stack.admin_a.counters()["requests"]["POST /ops/transfers"] == 2
    # The secrets: in no log record, task argument, job event, or the source's transfer record.
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert PASSWORD not in logged and KEY_CANARY not in logged
    assert sent and PASSWORD not in repr(sent) and KEY_CANARY not in repr(sent)
    records = httpx.get(
        f"{stack.a.api_url}/ops/transfers",
        auth=(stack.a.config.node_user, stack.a.config.node_password),
    ).text
    assert PASSWORD not in records and KEY_CANARY not in records
    assert '"token_type": "none"' in records or '"token_type":"none"' in records


def test_a_wrong_password_fails_once_with_the_ascp_authentication_code(stack: Stack) -> None:
    endpoint(stack, "ssh-wrong", ssh_password=SecretStr("not-the-password"))
    write_tree(stack.root_a, {"w/x.txt": b"x"})
    job_id = job_to(stack, "ssh-wrong", "w")

    states = settle(stack.ctx, stack.tasks, [stack.a_id])

    assert states[job_id] == JobState.FAILED
    with stack.ctx.sessions() as session:
        job = get_job(session, job_id)
        assert job.reason is not None
        assert "ascp error 19 (AUTH)" in job.reason, job.reason
        assert "authentication failure" in job.reason
        assert "SSH endpoint ssh-wrong refused the login of" in job.reason, job.reason
        assert len(attempts_of(session, job_id)) == 1, "no token to renew: one attempt only"
    assert not (stack.root_b / "in-w").exists()


def test_a_wrong_host_key_fingerprint_is_refused(stack: Stack) -> None:
    endpoint(stack, "ssh-fp", ssh_password=SecretStr(PASSWORD))
    update_node(stack.ctx, "ssh-fp", {"sshfp": "00" * 20})  # another host's key
    write_tree(stack.root_a, {"f/x.txt": b"x"})
    job_id = job_to(stack, "ssh-fp", "f")

    states = settle(stack.ctx, stack.tasks, [stack.a_id])

    assert states[job_id] == JobState.FAILED
    with stack.ctx.sessions() as session:
        reason = get_job(session, job_id).reason or ""
    assert "ascp error 51 (INSECURE_CONNECTION)" in reason, reason


def test_an_ssh_endpoint_is_never_a_source_and_its_health_is_a_tcp_connect(
    stack: Stack,
) -> None:
    endpoint(stack, "ssh-only", ssh_password=SecretStr(PASSWORD))
    spec = JobSpec(
        source_node="ssh-only",
        source_paths=["x"],
        destination_node="node-a",
        destination_path="y",
    )
    with pytest.raises(JobRejected) as refused:
        create_job(stack.ctx, spec)
    assert refused.value.field == "source_node"
    before = stack.admin_b.counters()["requests"]
    summary = check_all(stack.ctx)
    assert "all reachable" in summary, summary
    after = stack.admin_b.counters()["requests"]
    # node-b (as itself) is asked ping and /info once; its SSH endpoint entries add nothing.
    assert sum(after.values()) - sum(before.values()) == 2


@pytest.fixture
def client(stack: Stack) -> Iterator[tuple[TestClient, dict[str, str]]]:
    with stack.ctx.sessions() as session:
        secret = create_token(session, "admin", [Scope.ADMIN]).secret
        session.commit()
    with TestClient(create_app(stack.ctx), raise_server_exceptions=False) as test_client:
        yield test_client, {"Authorization": f"Bearer {secret}"}


def test_the_api_registers_an_endpoint_and_refuses_bad_input_naming_the_field(
    stack: Stack, client: tuple[TestClient, dict[str, str]]
) -> None:
    http, headers = client
    good = {
        "kind": "ssh",
        "name": "partner",
        "ssh_host": stack.b.host,
        "ssh_port": stack.b.fasp_port,
        "ssh_user": "xfer",
        "ssh_password": PASSWORD,
        "sshfp": stack.b.config.ssh_fingerprint,
    }
    bad: list[tuple[dict[str, Any], str]] = [
        ({**good, "ssh_private_key": PRIVATE_PEM}, "ssh_private_key"),
        ({**good, "ssh_port": 0}, "ssh_port"),
        ({**good, "sshfp": "not a fingerprint"}, "sshfp"),
        ({**good, "ssh_host": "xfer@host:22"}, "ssh_host"),
        (
            {k: v for k, v in good.items() if k != "ssh_password"} | {"ssh_private_key": "x"},
            "ssh_private_key",
        ),
        ({**good, "base_url": "https://x:9092"}, "base_url"),
    ]
    for body, named in bad:
        answer = http.post("/api/v1/nodes", json=body, headers=headers)
        assert answer.status_code == 422, (body, answer.text)
        assert answer.json()["field"] == named, answer.text
        assert PASSWORD not in answer.text

    created = http.post("/api/v1/nodes", json=good, headers=headers)
    assert created.status_code == 201, created.text
    shown = created.json()
    assert shown["kind"] == "ssh" and shown["ssh_port"] == stack.b.fasp_port
    assert shown["base_url"] == f"ssh://{stack.b.host}:{stack.b.fasp_port}"
    listed = http.get("/api/v1/nodes", headers=headers).text
    assert PASSWORD not in listed
    checked = http.post("/api/v1/nodes/partner/check", headers=headers)
    assert checked.status_code == 200 and checked.json()["reachable"] is True
    rotated = http.patch("/api/v1/nodes/partner", json={"secret": "new-Pw"}, headers=headers)
    assert rotated.status_code == 200, rotated.text
    wrong_kind = http.patch("/api/v1/nodes/partner", json={"insecure": True}, headers=headers)
    assert wrong_kind.status_code == 422 and wrong_kind.json()["field"] == "insecure"
    job = {
        "source_node": "partner",
        "source_paths": ["x"],
        "destination_node": "node-a",
        "destination_path": "y",
    }
    refused = http.post("/api/v1/jobs", json=job, headers=headers)
    assert refused.status_code == 422 and refused.json()["field"] == "source_node"


def test_the_cli_registers_an_endpoint_with_a_key_file_and_refuses_two_credentials(
    stack: Stack,
    client: tuple[TestClient, dict[str, str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    http, headers = client

    class ViaTestClient:  # the CLI's ApiClient, over the in-process app
        def __init__(self, *_: object) -> None: ...
        def __enter__(self) -> ViaTestClient:
            return self

        def __exit__(self, *_: object) -> None: ...
        def post(self, path: str, body: dict[str, Any]) -> Any:
            answer = http.post(path, json=body, headers=headers)
            assert answer.status_code == 201, answer.text
            return answer.json()

    monkeypatch.setattr(cli_nodes, "ApiClient", ViaTestClient)
    key_file = tmp_path / "xfer_key"
    key_file.write_text(PRIVATE_PEM)
    monkeypatch.setenv("XFER_PW", PASSWORD)
    target = ["--ssh", stack.b.host, "--ssh-user", "xfer", "--ssh-port", str(stack.b.fasp_port)]

    both = main(["nodes", "add", "p", *target, "--ssh-password-env", "XFER_PW",
                 "--ssh-key-file", str(key_file)])  # fmt: skip
    assert both == 2 and "exactly one of --ssh-password-env" in capsys.readouterr().err
    added = main(["nodes", "add", "p", *target, "--ssh-key-file", str(key_file)])
    printed = capsys.readouterr()
    assert added == 0, printed.err
    assert "SSH endpoint p registered" in printed.out and KEY_CANARY not in printed.out
    shown = http.get("/api/v1/nodes/p", headers=headers).json()
    assert shown["auth_kind"] == "ssh_key" and shown["username"] == "xfer"
