"""Logging for every role: one line per event (JSON or plain), job context, secrets masked.

``configure_logging(settings, role)`` is called once by each process's entry point (API,
worker, beat, Flower, ``up``). It puts one handler on the root logger, so every library's
records (httpx, celery, kombu, uvicorn, ...) pass through the same two filters: one stamps the
context bound with ``log_context`` (job, node, task, attempt), the other masks secrets.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from types import MappingProxyType
from typing import IO, TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote, urlsplit

if TYPE_CHECKING:
    from orchestrator.settings import Settings

CONTEXT_FIELDS = ("job_id", "node", "task_id", "task", "attempt")
MASK = "***"
# Shorter values would mask ordinary words; the patterns below still catch them by their key.
MIN_SECRET_LENGTH = 6
# Chatty at INFO (one line per HTTP request); shown only when the level is DEBUG.
CHATTY_LOGGERS = ("httpx", "httpcore", "hpack", "urllib3", "alembic.runtime.plugins")

_EMPTY: Mapping[str, object] = MappingProxyType({})
_context: ContextVar[Mapping[str, object]] = ContextVar("orchestrator_log_context", default=_EMPTY)


# -- context --------------------------------------------------------------------------------


def bind(**fields: object) -> Token[Mapping[str, object]]:
    """Add fields (None ones are skipped) to this thread's or task's log context."""
    merged = {**_context.get(), **{k: v for k, v in fields.items() if v is not None}}
    return _context.set(MappingProxyType(merged))


def unbind(token: Token[Mapping[str, object]]) -> None:
    """Restore the context as it was before ``bind`` returned ``token``."""
    _context.reset(token)


@contextmanager
def log_context(**fields: object) -> Iterator[None]:
    """Every record logged inside carries these fields (job_id, node, attempt, ...)."""
    token = bind(**fields)
    try:
        yield
    finally:
        unbind(token)


def current_context() -> dict[str, object]:
    """The fields bound right now."""
    return dict(_context.get())


# -- secrets --------------------------------------------------------------------------------

# Each rule: trigger strings (the pattern runs only when one of them is in the text, lower-cased
# unless the trigger has capitals; this keeps the common case to a few substring searches) and
# a pattern whose first group is kept while the rest of the match is masked.
_RULES: tuple[tuple[tuple[str, ...], re.Pattern[str]], ...] = (
    (  # An Authorization header, whatever its scheme: "Authorization: Basic dXNlcjpw".
        ("authorization",),
        re.compile(
            r"(\b(?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?"
            r"(?:(?:basic|bearer|token|digest)\s+)?)[^\s\"',;}]+",
            re.IGNORECASE,
        ),
    ),
    (  # A credential after its scheme, as headers and curl lines write it ("basic auth" is
        # prose: the scheme must be capitalised).
        ("basic ", "bearer "),
        re.compile(r"(\b(?:Basic|Bearer)\s+)[A-Za-z0-9._~+/-]{8,}=*"),
    ),
    (  # The password of a URL: redis://:pw@host, postgresql://user:pw@host.
        ("@",),
        re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s/@:]*:)[^\s/@]+(?=@)"),
    ),
    (  # key=value, "key": "value", key: value for keys that name a secret (the match starts
        # at the word: node_password=..., secret_keys: ...; see _keep_first for the exception).
        ("pass", "secret", "token", "apikey", "api_key", "api-key", "credential"),
        re.compile(
            r"((?:pass(?:word|wd)|secret|token|api[_-]?key|credential)[\w.-]*[\"']?\s*[:=]\s*[\"']?)"
            r"[^\s\"'&,;)}\]]+",
            re.IGNORECASE,
        ),
    ),
    (  # Our API tokens (hso_<id>_<secret>): the id stays, it names the token.
        ("hso_",),
        re.compile(r"(\bhso_[0-9a-f]{8}_)[A-Za-z0-9_-]{8,}"),
    ),
    (  # Our dashboard sessions (hsd_<secret>), as a cookie holds them.
        ("hsd_",),
        re.compile(r"(\bhsd_)[A-Za-z0-9_-]{8,}"),
    ),
    (  # Aspera transfer tokens: "AT", up to 8 characters ("V7", "M2"), "_", the token (which
        # usually ends "TA"; a cut-off one still counts).
        ("AT",),
        re.compile(r"()\bAT[0-9A-Za-z]{0,8}_[A-Za-z0-9_-]{16,}"),
    ),
    (  # Fernet keys: 43 URL-safe base64 characters and "=".
        ("=",),
        re.compile(r"()(?<![\w-])[A-Za-z0-9_-]{43}=(?![\w=])"),
    ),
)


# Every rule's triggers at once: lower-case ones searched in the lower-cased text, the others
# as written (the loop below checks each rule's own).
_LOWER_TRIGGERS = re.compile(
    "|".join(re.escape(t) for triggers, _ in _RULES for t in triggers if t.islower())
)
_CASED_TRIGGERS = tuple(t for triggers, _ in _RULES for t in triggers if not t.islower())


def _keep_first(match: re.Match[str]) -> str:
    start = match.start()
    if match.string[max(0, start - 10) : start].lower() == "iteration_":
        return match.group(0)  # the node's feed cursor: a person needs to read it
    return match.group(1) + MASK


class _Secret(Protocol):
    """pydantic's SecretStr, as far as it matters here."""

    def get_secret_value(self) -> str: ...


class SecretRegistry:
    """Values known to be secret in this process, plus the shapes secrets take."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: set[str] = set()
        self._literal: re.Pattern[str] | None = None

    def register(self, *values: str | _Secret | None) -> None:
        """Mask these values wherever they appear from now on (short ones are skipped)."""
        added = False
        for value in values:
            text = value if value is None or isinstance(value, str) else value.get_secret_value()
            if text and len(text) >= MIN_SECRET_LENGTH and text not in self._values:
                with self._lock:
                    self._values.add(text)
                added = True
        if added:
            with self._lock:
                ordered = sorted(self._values, key=len, reverse=True)  # longest first
                self._literal = re.compile("|".join(re.escape(v) for v in ordered))

    def redact(self, text: str) -> str:
        """``text`` with every registered value and every secret-shaped part masked."""
        literal = self._literal
        if literal is not None:
            text = literal.sub(MASK, text)
        lower = text.lower()
        if _LOWER_TRIGGERS.search(lower) is None and not any(t in text for t in _CASED_TRIGGERS):
            return text  # the common case: no rule's trigger, one search instead of a loop
        for triggers, pattern in _RULES:
            if any(t in (lower if t.islower() else text) for t in triggers):
                text = pattern.sub(_keep_first, text)
        return text

    def clear(self) -> None:
        """Forget the registered values (tests)."""
        with self._lock:
            self._values.clear()
            self._literal = None


SECRETS = SecretRegistry()
register_secret = SECRETS.register
redact = SECRETS.redact


def url_password(url: str | None) -> str | None:
    """The password inside a URL (redis://:pw@host), if any."""
    if not url:
        return None
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def register_url_password(*urls: str | None) -> None:
    """Mask the passwords inside these URLs, as written and decoded (each entry of a
    ``;``-separated list, as a Sentinel broker URL is)."""
    for url in urls:
        for entry in (url or "").split(";"):
            password = url_password(entry)
            if password:
                register_secret(password, unquote(password))


# -- filters and formatters -----------------------------------------------------------------


class ContextFilter(logging.Filter):
    """Stamps the bound context on each record (fields given with ``extra=`` win)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "log_context"):
            bound = _context.get()
            record.log_context = {
                name: getattr(record, name, None) or bound.get(name)
                for name in CONTEXT_FIELDS
                if getattr(record, name, None) is not None or name in bound
            }
        return True


class RedactingFilter(logging.Filter):
    """Masks secrets in the message, the exception and the stack of every record it sees."""

    _exceptions = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "redacted", False):
            return True
        try:
            message = record.getMessage()
        except Exception:  # bad %-args: keep the template, never fail the caller
            message = f"{record.msg!s} (with arguments that did not format)"
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._exceptions.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        record.redacted = True
        return True


def _context_of(record: logging.LogRecord) -> dict[str, object]:
    found: dict[str, object] = getattr(record, "log_context", None) or {}
    return found


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, role, context, exception."""

    def __init__(self, role: str) -> None:
        super().__init__()
        self.role = role

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "role": self.role,
            "pid": record.process,
        }
        entry.update(_context_of(record))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, ensure_ascii=False, default=str)


class PlainFormatter(logging.Formatter):
    """``time level logger: message [job=… node=… task=…[id] attempt=…]`` for a person."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        ctx = _context_of(record)
        if not ctx:
            return text
        parts = [f"job={ctx['job_id']}"] if "job_id" in ctx else []
        if "node" in ctx:
            parts.append(f"node={ctx['node']}")
        if "task" in ctx:
            task_id = str(ctx.get("task_id", ""))[:8]
            parts.append(f"task={ctx['task']}[{task_id}]" if task_id else f"task={ctx['task']}")
        if "attempt" in ctx:
            parts.append(f"attempt={ctx['attempt']}")
        head, newline, rest = text.partition("\n")  # the context goes on the message line
        return f"{head} [{' '.join(parts)}]{newline}{rest}"


# -- set-up -----------------------------------------------------------------------------------


class _Handler(logging.StreamHandler[IO[str]]):
    """Our root handler (recognised, so that configuring again replaces it)."""


def _wants_json(log_format: str, stream: IO[str]) -> bool:
    if log_format == "auto":
        return not stream_is_terminal(stream)
    return log_format == "json"


def _level(name: str | int | None) -> int:
    if name is None:
        return logging.NOTSET
    if isinstance(name, int):
        return name
    found = logging.getLevelName(name.strip().upper())
    return found if isinstance(found, int) else logging.INFO


def configure_logging(
    settings: Settings,
    role: str,
    *,
    level: str | int | None = None,
    stream: IO[str] | None = None,
) -> logging.Handler:
    """Send every record to ``stream`` (stderr) as JSON or plain lines, secrets masked.

    The level is ORCH_LOG_LEVEL, or ``level`` when that is more verbose (celery's --loglevel).
    Other handlers on the root logger are removed: this process logs one way. Safe to call
    again (the handler is replaced).
    """
    chosen = _level(settings.log_level)
    wanted = _level(level)
    if wanted and wanted < chosen:
        chosen = wanted
    out = stream if stream is not None else sys.stderr
    handler = _Handler(out)
    handler.setFormatter(
        JsonFormatter(role) if _wants_json(settings.log_format, out) else PlainFormatter()
    )
    handler.addFilter(ContextFilter())
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        if isinstance(old, _Handler):
            old.close()
    root.addHandler(handler)
    root.setLevel(chosen)
    _route_to_root()
    chatty = logging.NOTSET if chosen <= logging.DEBUG else logging.WARNING
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(chatty)
    logging.captureWarnings(True)
    register_settings_secrets(settings)
    return handler


def _route_to_root() -> None:
    """Loggers that kept their records to their own handlers (uvicorn's, once configured) send
    them to the root handler instead: no line of this process escapes the masking."""
    for logger in list(logging.Logger.manager.loggerDict.values()):
        if isinstance(logger, logging.Logger) and not logger.propagate:
            for old in list(logger.handlers):
                logger.removeHandler(old)
            logger.propagate = True


def register_settings_secrets(settings: Settings) -> None:
    """Mask what the settings hold: every secret setting (Fernet keys, the alert signing key,
    the SMTP password, ...) and the password inside every URL (broker, database)."""
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if hasattr(value, "get_secret_value"):
            text: str = value.get_secret_value()
            register_secret(text, *(part.strip() for part in text.split(",")))
        elif isinstance(value, str) and "://" in value:
            register_url_password(value)


def register_basic_auth(value: str | None) -> None:
    """Mask the passwords of a ``user:password[,user:password]`` basic-auth list."""
    for pair in (value or "").split(","):
        register_secret(pair.partition(":")[2])


def stream_is_terminal(stream: IO[str] | None = None) -> bool:
    """Whether ``stream`` (stderr) is a terminal: what ``auto`` decides on."""
    target = stream if stream is not None else sys.stderr
    try:
        return os.isatty(target.fileno())
    except (AttributeError, OSError, ValueError):
        return False
