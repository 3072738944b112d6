"""Bounded request bodies, refused before they are read, and the token checked before parsing.

The in-process tests pin the answers (401 before 413 before 422, the limits per route); the
process test measures the real API's peak memory while a 200 MB body is streamed at it.
"""

from __future__ import annotations

import select
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.api.gate import API_MAX_BODY, FORM_MAX_BODY
from orchestrator.services.tokens import Scope, create_token
from tests.api.conftest import Api
from tests.support.processes import ManagedProcess, free_port, orchestrator_env, wait_for
from tests.support.stack import build_context

MIB = 1024 * 1024


def test_a_write_without_a_token_is_refused_before_its_body_is_parsed(api: Api) -> None:
    # Not JSON at all: a route that parsed first would answer 400 or 422.
    answer = api.client.post(
        "/api/v1/jobs", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 401, answer.text
    assert answer.headers["www-authenticate"] == "Bearer"
    assert answer.headers["connection"] == "close", "the unread body is not drained"
    wrong = {"Authorization": "Bearer hso_00000000_nope", "Content-Type": "application/json"}
    assert api.client.post("/api/v1/nodes", content=b"[", headers=wrong).status_code == 401
    # A short scope is still told 403 by the route (the token itself is valid).
    short = api.client.post("/api/v1/nodes", json={}, headers=api.headers("read"))
    assert short.status_code == 403


def test_a_body_over_the_api_limit_is_413_from_its_length_or_as_it_streams(api: Api) -> None:
    big = b'{"labels": {"k": "' + b"x" * API_MAX_BODY + b'"}}'
    declared = api.client.post(
        "/api/v1/jobs", content=big, headers={**api.headers("submit"), "Content-Type": "a/json"}
    )
    assert declared.status_code == 413, declared.text
    assert "1 MiB" in declared.json()["error"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: Transfer-Encoding: chunked
        for start in range(0, len(big), 64 * 1024):
            yield big[start : start + 64 * 1024]

    streamed = api.client.post(
        "/api/v1/jobs",
        content=chunks(),
        headers={**api.headers("submit"), "Content-Type": "application/json"},
    )
    assert streamed.status_code == 413, streamed.text
    # Within the limit the body is read and validated as before.
    fine = api.client.post("/api/v1/jobs", json={"labels": {}}, headers=api.headers("submit"))
    assert fine.status_code == 422


def test_the_sign_in_form_takes_4_kib_at_most(api: Api) -> None:
    answer = api.client.post(
        "/dashboard/sign-in",
        content=b"token=" + b"x" * FORM_MAX_BODY,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 413
    assert "4 KiB" in answer.json()["error"]


# -- the real API process: its memory under a 200 MB body ------------------------------------


def _kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


def _reset_peak(pid: int) -> bool:
    """Start VmHWM (peak RSS) over from the current RSS (Linux >= 4.0)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _stream(port: int, headers: dict[str, str], total: int, *, chunked: bool) -> tuple[int, int]:
    """POST a ``total``-byte JSON body in 64 KiB pieces until the server answers or hangs up;
    the status it answered and how many body bytes were sent."""
    piece = 64 * 1024
    lines = [
        "POST /api/v1/jobs HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Content-Type: application/json",
        "Transfer-Encoding: chunked" if chunked else f"Content-Length: {total}",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    opening = b'{"labels": {"k": "'
    sent = 0
    deadline = time.monotonic() + 120
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        try:
            while sent < total and time.monotonic() < deadline:
                readable, _, _ = select.select([sock], [], [], 0)
                if readable:
                    break  # the server answered (or closed) before the body ended
                data = opening if sent == 0 else b"x" * min(piece, total - sent)
                sock.sendall(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
                sent += len(data)
            if chunked and sent >= total:
                sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        reply = b""
        try:
            while b"\r\n" not in reply:
                more = sock.recv(4096)
                if not more:
                    break
                reply += more
        except ConnectionResetError:
            pass
    status = int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/1.1 ") else 0
    return status, sent


@pytest.fixture
def api_process(tmp_path: Path) -> Iterator[tuple[ManagedProcess, int, str]]:
    """`hsts-orchestrator api` as its own process over a migrated SQLite file, and a token."""
    url = f"sqlite:///{tmp_path / 'orchestrator.db'}"
    ctx, _, engine = build_context(url, tmp_path / "data")
    with ctx.sessions() as session:
        token = create_token(session, "limits", [Scope.SUBMIT]).secret
        session.commit()
    engine.dispose()
    port = free_port()
    env = orchestrator_env(
        {"database_url": url, "data_dir": tmp_path / "data", "redis_url": "redis://127.0.0.1:1/0"}
    )
    process = ManagedProcess(
        "api",
        [sys.executable, "-m", "orchestrator.cli", "api", "--port", str(port)],
        tmp_path / "api.log",
        env,
    )
    process.start()
    try:

        def answers() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return True
            except OSError:
                return False

        wait_for(answers, timeout=60, what="the API listens", watch=[process])
        yield process, port, token
    finally:
        process.kill_group()


@pytest.mark.slow
def test_a_200_mb_post_leaves_the_api_process_within_20_mb(
    api_process: tuple[ManagedProcess, int, str],
) -> None:
    process, port, token = api_process
    # Warm the paths a request takes (imports, the first session), as a live API has.
    _stream(port, {}, 1000, chunked=False)
    _stream(port, {"Authorization": f"Bearer {token}"}, 2 * MIB, chunked=True)
    cases = [
        ({}, False, 401),  # no token, Content-Length: 200 MB
        ({}, True, 401),  # no token, no length: the body streams
        ({"Authorization": f"Bearer {token}"}, True, 413),  # a valid token, streaming
    ]
    for headers, chunked, expected in cases:
        base = _kib(process.pid, "VmRSS")
        exact = _reset_peak(process.pid)
        status, sent = _stream(port, headers, 200 * MIB, chunked=chunked)
        peak = _kib(process.pid, "VmHWM" if exact else "VmRSS")
        grown_mb = (peak - base) / 1024
        print(f"{expected} chunked={chunked}: sent {sent / MIB:.1f} MiB, RSS +{grown_mb:.1f} MB")
        assert status == expected, (status, sent, process.tail())
        assert grown_mb <= 20, f"peak RSS grew {grown_mb:.0f} MB under a 200 MB body"
        assert process.alive
