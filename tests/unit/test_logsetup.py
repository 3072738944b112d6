"""Log lines: the JSON and plain formats with their context fields, and the masking of secrets
on the root logger's handler (so every library's records are covered)."""

from __future__ import annotations

import io
import json
import logging
import os
import threading
import timeit
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from pydantic import SecretStr

from orchestrator.logsetup import (
    SECRETS,
    bind,
    configure_logging,
    current_context,
    log_context,
    redact,
    register_basic_auth,
    register_secret,
    unbind,
)
from orchestrator.settings import Settings

CANARY = "canary-Secret-4711"
FERNET = "kV3o1mYb0nL5G2f7sN0bqZ8X1pDgJ4cT9hW6eRuAaQk="


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Each test configures the root logger; put back what pytest had."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    chatty = {name: logging.getLogger(name).level for name in ("httpx", "httpcore")}
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    for name, old in chatty.items():
        logging.getLogger(name).setLevel(old)
    SECRETS.clear()


def configured(**settings: Any) -> io.StringIO:
    """configure_logging onto a StringIO; returns the stream."""
    stream = io.StringIO()
    values = {"log_format": "json", **settings}
    configure_logging(Settings(**values), "worker", stream=stream)
    return stream


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line]


# -- formats --------------------------------------------------------------------------------


def test_json_line_has_time_level_logger_message_role_and_the_bound_context() -> None:
    stream = configured()
    token = bind(task_id="5b6f7e0e-aaaa", task="orchestrator.submit")
    try:
        with log_context(job_id="job-1", node="node-a", attempt=2):
            logging.getLogger("orchestrator.services.conveyor.submission").info(
                "job %s: posted", "job-1"
            )
        logging.getLogger("celery.app.trace").warning("outside the job")
    finally:
        unbind(token)
    logging.getLogger("x").info("after the task")
    first, second, third = lines(stream)
    assert first["message"] == "job job-1: posted"
    assert first["level"] == "INFO"
    assert first["logger"] == "orchestrator.services.conveyor.submission"
    assert first["role"] == "worker"
    assert first["pid"] == os.getpid()
    assert first["time"].endswith("Z") and "T" in first["time"]
    assert {k: first[k] for k in ("job_id", "node", "task_id", "task", "attempt")} == {
        "job_id": "job-1",
        "node": "node-a",
        "task_id": "5b6f7e0e-aaaa",
        "task": "orchestrator.submit",
        "attempt": 2,
    }
    assert second["task_id"] == "5b6f7e0e-aaaa" and "job_id" not in second
    assert not {"job_id", "node", "task_id", "task", "attempt"} & set(third)


def test_extra_fields_name_the_job_without_a_bound_context() -> None:
    stream = configured()
    logging.getLogger("t").info("ended", extra={"job_id": "j9", "node": "node-b", "attempt": 1})
    (line,) = lines(stream)
    assert (line["job_id"], line["node"], line["attempt"]) == ("j9", "node-b", 1)


def test_an_exception_is_one_field_of_the_same_line_and_masked() -> None:
    stream = configured()
    register_secret(CANARY)
    try:
        raise RuntimeError(f"node said: bad password {CANARY}")
    except RuntimeError:
        logging.getLogger("t").exception("the call failed")
    (line,) = lines(stream)
    assert line["message"] == "the call failed"
    assert "Traceback" in line["exception"] and "RuntimeError" in line["exception"]
    assert CANARY not in stream.getvalue()
    assert "***" in line["exception"]


def test_plain_lines_carry_the_context_in_brackets() -> None:
    stream = configured(log_format="plain")
    with log_context(job_id="j1", node="node-a", task="orchestrator.poll", task_id="abcdef123456"):
        logging.getLogger("t").warning("slow")
    text = stream.getvalue()
    assert " WARNING t: slow [job=j1 node=node-a task=orchestrator.poll[abcdef12]]" in text
    assert not text.lstrip().startswith("{")


def test_auto_is_plain_on_a_terminal_and_json_on_a_pipe() -> None:
    primary, secondary = os.openpty()
    with os.fdopen(secondary, "w") as terminal:
        configure_logging(Settings(log_format="auto"), "api", stream=terminal)
        logging.getLogger("t").warning("to a person")
        terminal.flush()
        shown = os.read(primary, 4096).decode()
    os.close(primary)
    assert "WARNING t: to a person" in shown and "{" not in shown
    piped = io.StringIO()
    configure_logging(Settings(log_format="auto"), "api", stream=piped)
    logging.getLogger("t").warning("to a machine")
    assert json.loads(piped.getvalue())["message"] == "to a machine"


def test_configuring_again_replaces_the_handler_and_the_levels_follow_the_settings() -> None:
    configured(log_level="INFO")
    second = configured(log_level="WARNING")
    root = logging.getLogger()
    assert len(root.handlers) == 1
    assert root.level == logging.WARNING
    assert logging.getLogger("httpx").level == logging.WARNING
    logging.getLogger("t").info("hidden")
    logging.getLogger("t").warning("shown")
    assert [line["message"] for line in lines(second)] == ["shown"]
    # celery's --loglevel may make a process more verbose, never quieter.
    configure_logging(Settings(log_level="INFO"), "worker", level="DEBUG", stream=io.StringIO())
    assert root.level == logging.DEBUG
    assert logging.getLogger("httpx").level == logging.NOTSET  # shown at DEBUG
    configure_logging(Settings(log_level="INFO"), "worker", level=logging.ERROR)
    assert root.level == logging.INFO


def test_a_record_whose_arguments_do_not_format_is_logged_not_raised() -> None:
    stream = configured()
    logging.getLogger("t").info("two %s %s", "one")
    (line,) = lines(stream)
    assert line["message"].startswith("two %s %s")


def test_the_context_belongs_to_its_thread() -> None:
    seen: list[dict[str, object]] = []
    with log_context(job_id="main"):
        worker = threading.Thread(target=lambda: seen.append(current_context()))
        worker.start()
        worker.join()
        with log_context(node="node-a"):
            assert current_context() == {"job_id": "main", "node": "node-a"}
        assert current_context() == {"job_id": "main"}
    assert current_context() == {}
    assert seen == [{}]


# -- masking --------------------------------------------------------------------------------


def test_every_library_logger_is_masked_by_the_root_handler() -> None:
    stream = configured(log_level="DEBUG")
    register_secret(SecretStr(CANARY))
    logging.getLogger("httpx").debug("headers: [(b'Authorization', b'Basic dXNlcjpjYW5hcnk=')]")
    logging.getLogger("celery.worker").info("connect %s", "redis://:pw-in-url@127.0.0.1:6379/0")
    logging.getLogger("kombu").warning("%(body)s", {"body": {"password": CANARY}})
    logging.getLogger("uvicorn.access").warning(  # hstssim may have set it to WARNING
        '%s - "%s %s HTTP/%s" %d', "127.0.0.1", "GET", "/x?token=abc123&page=2", "1.1", 200
    )
    logging.getLogger("up").info("the API answers hso_0a1b2c3d_Zm9vYmFyYmF6cXV4 with 200")
    text = stream.getvalue()
    for secret in ("dXNlcjpjYW5hcnk", "pw-in-url", CANARY, "abc123", "Zm9vYmFyYmF6cXV4"):
        assert secret not in text, secret
    assert text.count("***") == 5, text
    assert "page=2" in text and "hso_0a1b2c3d_***" in text  # what is not secret stays


def test_a_logger_that_kept_its_lines_to_itself_goes_through_the_root_handler() -> None:
    own = io.StringIO()
    library = logging.getLogger("some.library.access")  # as uvicorn configures its loggers
    library.addHandler(logging.StreamHandler(own))
    library.propagate = False
    try:
        stream = configured()
        library.warning("GET /x?password=hunter22 200")
    finally:
        library.propagate = True
    assert own.getvalue() == ""
    assert [line["message"] for line in lines(stream)] == ["GET /x?password=*** 200"]


def test_the_settings_secrets_and_flower_password_are_masked() -> None:
    stream = configured(
        secret_keys=SecretStr(f"{FERNET},other-key-value"),
        redis_url="redis://:broker%40pass@10.0.0.5:6379/0",
        database_url="postgresql+psycopg://orch:db-pass-77@db:5432/orch",
        smtp_password=SecretStr("smtp-pass-99"),
    )
    register_basic_auth("admin:flower-pass-1,ops:flower-pass-2")
    log = logging.getLogger("t")
    log.info("keys %s and %s", FERNET, "other-key-value")
    log.info("broker password decoded: broker@pass; database: db-pass-77")
    log.info("flower: flower-pass-1 flower-pass-2; mail: smtp-pass-99")
    text = stream.getvalue()
    secrets = (FERNET, "other-key-value", "broker@pass", "db-pass-77", "flower-pass-", "smtp-pass")
    for secret in secrets:
        assert secret not in text, secret


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("Authorization: Basic dXNlcjpwYXNz", "Authorization: Basic ***"),
        ("{'authorization': 'Bearer abc.def.ghi'}", "{'authorization': 'Bearer ***'}"),
        ("-H 'Bearer ATV2_abcdefghijklmnopqrstTA'", "-H 'Bearer ***'"),
        ("postgresql://u:p4ss@db/x", "postgresql://u:***@db/x"),
        ('{"node_password": "x1", "api_url": "http://n"}', '{"node_password": "***", "api_url": "http://n"}'),
        ("ORCH_SECRET_KEYS=abc123", "ORCH_SECRET_KEYS=***"),
        ("x-api-key: 1234", "x-api-key: ***"),
        ("token ATM2_aaaaaaaaaaaaaaaaaaaaTA expired", "token *** expired"),
        ("cookie hso_dashboard=hsd_Zm9vYmFyYmF6cXV4", "cookie hso_dashboard=hsd_***"),
        ('"spec": "ATV7_abcdefghijklmnopqrst-cut"', '"spec": "***"'),
        (f"key {FERNET} here", "key *** here"),
    ],
)  # fmt: skip
def test_secret_shapes_are_masked(text: str, masked: str) -> None:
    assert redact(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "GET /ops/transfers?iteration_token=123&count=5",  # the feed cursor
        "Flower needs basic auth over TLS",
        "job 7d1e: submitted as node transfer 42 on node-a",
        "a passing remark about 3 tokens",
    ],
)
def test_ordinary_text_is_not_masked(text: str) -> None:
    assert redact(text) == text


def test_a_secret_shorter_than_six_characters_is_not_registered() -> None:
    register_secret("demo", None, "")
    assert redact("the demo node") == "the demo node"


SAFE = st.text(alphabet=st.characters(blacklist_characters="*", blacklist_categories=("Cs",)))


@given(secret=st.text(alphabet="abcdefXYZ0123456789-_.!/", min_size=6, max_size=40), a=SAFE, b=SAFE)
def test_a_registered_secret_never_survives_whatever_surrounds_it(
    secret: str, a: str, b: str
) -> None:
    register_secret(secret)
    try:
        masked = redact(a + secret + b)
        assert secret not in masked
        assert redact(masked) == masked
    finally:
        SECRETS.clear()


TRIGGERS = (
    "authorization", "basic", "bearer", "@", "pass", "secret", "token", "api", "hso_", "hsd_"
)  # fmt: skip


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=200))
def test_text_without_a_trigger_comes_back_unchanged(text: str) -> None:
    assume(not any(t in text.lower() for t in TRIGGERS) and "credential" not in text.lower())
    assume("AT" not in text and "=" not in text)
    assert redact(text) == text


def test_masking_is_cheap() -> None:
    register_secret(CANARY, "another-node-password")
    line = (
        "Task orchestrator.poll[5b6f7e0e-1111-2222-3333-444455556666] succeeded in 0.01s: "
        "'node node-a: 12 transfer(s) seen, 3 changed, 2 completed, 0 failed (1 feed page(s))'"
    )
    runs = 2000
    seconds = min(timeit.repeat(lambda: redact(line), number=runs, repeat=5)) / runs
    assert seconds < 100e-6, f"{seconds * 1e6:.1f} µs per line"  # measured ~3-5 µs
