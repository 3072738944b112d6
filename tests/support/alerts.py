"""Real alert receivers for tests: an HTTP server that checks signatures the way docs/alerts.md
tells receivers to, and an SMTP server (aiosmtpd), optionally with STARTTLS and AUTH."""

from __future__ import annotations

import json
import os
import re
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.support.processes import free_port

DOCS = Path(__file__).parents[2] / "docs" / "alerts.md"

Verifier = Callable[[bytes, dict[str, str], bytes], bool]


def write_alerts_file(path: Path, channels: dict[str, Any], **defaults: Any) -> None:
    """Write an alerts file; a rewrite gets a later modification time (any clock resolution)."""
    existed = path.exists()
    path.write_text(yaml.safe_dump({"channels": channels, "defaults": defaults}))
    if existed:
        stamp = path.stat().st_mtime_ns + 1_000_000_000
        os.utime(path, ns=(stamp, stamp))


def docs_verifier() -> Verifier:
    """The receiver-side ``verify`` function exactly as docs/alerts.md prints it."""
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(), re.S)
    source = next(block for block in blocks if "def verify" in block)
    namespace: dict[str, Any] = {}
    exec(compile(source, str(DOCS), "exec"), namespace)
    verify: Verifier = namespace["verify"]
    return verify


@dataclass
class Delivery:
    """One POST the receiver got, and what it answered."""

    headers: dict[str, str]
    body: bytes
    signed: bool
    status: int

    @property
    def payload(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data

    @property
    def delivery_id(self) -> str:
        return self.headers["X-Orchestrator-Delivery"]


@dataclass
class WebhookReceiver:
    """A webhook endpoint: 401 on a bad signature, 503 for the first ``fail_first`` calls."""

    secret: bytes
    fail_first: int = 0
    delay: float = 0.0
    deliveries: list[Delivery] = field(default_factory=list)
    hold: threading.Event | None = None  # set: answer; unset: keep the sender waiting
    arrived: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._verify = docs_verifier()
        self._server = ThreadingHTTPServer(("127.0.0.1", free_port()), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/hooks/orchestrator"

    def accepted(self) -> list[Delivery]:
        """The deliveries answered 200 (signature good, not failed on purpose)."""
        with self._lock:
            return [d for d in self.deliveries if d.status == 200]

    def all(self) -> list[Delivery]:
        """Every delivery, in arrival order."""
        with self._lock:
            return list(self.deliveries)

    def close(self) -> None:
        if self.hold is not None:
            self.hold.set()
        self._server.shutdown()
        self._server.server_close()

    def _answer(self, headers: dict[str, str], body: bytes) -> int:
        self.arrived.set()
        if self.hold is not None:
            self.hold.wait(30)
        if self.delay:
            time.sleep(self.delay)
        signed = self._verify(self.secret, headers, body)
        with self._lock:
            failing = self.fail_first > 0
            if signed and failing:
                self.fail_first -= 1
            status = 401 if not signed else 503 if failing else 200
            self.deliveries.append(Delivery(headers, body, signed, status))
        return status

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status = receiver._answer(dict(self.headers.items()), body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


@dataclass
class Mail:
    """One message the SMTP server accepted."""

    sender: str
    recipients: list[str]
    message: Message
    login: str | None


class _Handler:
    def __init__(self, box: Mailbox) -> None:
        self.box = box

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        login = session.auth_data.login.decode() if session.authenticated else None
        mail = Mail(
            envelope.mail_from,
            list(envelope.rcpt_tos),
            message_from_bytes(envelope.original_content or envelope.content),
            login,
        )
        self.box.mails.append(mail)
        return "250 Message accepted"


@dataclass
class Mailbox:
    """What the SMTP server received, and how to reach it."""

    port: int
    mails: list[Mail] = field(default_factory=list)


@contextmanager
def smtp_server(
    port: int | None = None,
    *,
    tls: ssl.SSLContext | None = None,
    user: str | None = None,
    password: str | None = None,
) -> Iterator[Mailbox]:
    """An SMTP server on 127.0.0.1: STARTTLS required when ``tls`` is given, AUTH when a user
    is (and then only after STARTTLS)."""
    box = Mailbox(port or free_port())

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        ok = (
            isinstance(data, LoginPassword)
            and data.login.decode() == user
            and data.password.decode() == password
        )
        return AuthResult(success=ok, handled=False, auth_data=data)

    options: dict[str, Any] = {}
    if tls is not None:
        options |= {"tls_context": tls, "require_starttls": True}
    if user is not None:
        options |= {"authenticator": authenticate, "auth_required": True}
    controller = Controller(_Handler(box), hostname="127.0.0.1", port=box.port, **options)
    controller.start()  # type: ignore[no-untyped-call]
    try:
        yield box
    finally:
        controller.stop()  # type: ignore[no-untyped-call]
