"""The REST API as the CLI uses it: one request at a time, every failure as one clear line.

``--api`` and ``--token`` are on every command that talks to the API; ``ORCH_API_URL`` and
``ORCH_API_TOKEN`` give their defaults (``hsts-orchestrator up --demo`` prints both exports).
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote, urlsplit

import httpx
import typer

from orchestrator.cli.console import EXIT_FAILURE, EXIT_USAGE, CliError, fail, usage

DEFAULT_API = "http://127.0.0.1:8000"

ApiUrl = Annotated[
    str,
    typer.Option(
        "--api",
        envvar="ORCH_API_URL",
        help="URL of the orchestrator's API.",
        rich_help_panel="Connection",
    ),
]
ApiToken = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="ORCH_API_TOKEN",
        help="API token (make one: hsts-orchestrator token create). Prefer the env var: a "
        "command line is visible to other users.",
        show_default=False,
        rich_help_panel="Connection",
    ),
]

_HINTS = {
    401: "check --token / ORCH_API_TOKEN (make one: hsts-orchestrator token create)",
    403: "use a token with that scope (hsts-orchestrator token create --scope ...)",
}


def segment(value: str) -> str:
    """A path segment for a URL (ids and names are quoted, never spliced raw)."""
    if not value.strip():
        usage("an id or name is empty")
    return quote(value, safe="")


class ApiClient:
    """An HTTP client for /api/v1 with a bearer token; raises CliError on any failure."""

    def __init__(self, url: str, token: str | None, *, timeout: float = 30.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            usage(f"--api: {url!r} is not an http(s) URL (e.g. {DEFAULT_API})")
        if not token:
            usage(
                "no API token: set ORCH_API_TOKEN or pass --token "
                "(make one: hsts-orchestrator token create --name me --scope submit)"
            )
        self.url = url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token}", "User-Agent": "hsts-orchestrator-cli"},
            timeout=timeout,
        )

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def get(self, path: str, **params: Any) -> Any:
        """GET and return the JSON body."""
        clean = {k: v for k, v in params.items() if v is not None}
        return self.call("GET", path, params=clean)

    def post(self, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
        """POST (JSON) and return the JSON body."""
        return self.call("POST", path, json=body, headers=headers)

    def delete(self, path: str) -> Any:
        """DELETE and return the JSON body, if any."""
        return self.call("DELETE", path)

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """One request; the JSON answer, or CliError with the API's own words."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.ConnectError as exc:
            fail(
                f"cannot reach the API at {self.url} ({_reason(exc)}): is "
                "`hsts-orchestrator up` (or `hsts-orchestrator api`) running there? "
                "Check --api / ORCH_API_URL"
            )
        except httpx.TimeoutException:
            fail(f"the API at {self.url} did not answer in time; is it overloaded or stuck?")
        except httpx.HTTPError as exc:
            fail(f"talking to the API at {self.url} failed: {_reason(exc)}")
        if response.is_success:
            return response.json() if response.content else None
        raise answer_error(response)


def answer_error(response: httpx.Response) -> CliError:
    """The CliError for an error answer: exit 2 for bad input, 1 otherwise."""
    code = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    message = body.get("error") if isinstance(body, dict) else None
    if not isinstance(message, str) or not message:
        text = " ".join(response.text.split())[:200]
        message = f"HTTP {code}" + (f": {text}" if text else "")
    hint = _HINTS.get(code)
    line = f"{message} ({hint})" if hint else message
    return CliError(line, EXIT_USAGE if code in (400, 422) else EXIT_FAILURE, status=code)


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.split("\n", 1)[0]
