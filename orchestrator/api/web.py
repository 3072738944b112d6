"""What the dashboard's pages share: who the caller is, the page headers, forms and their
CSRF token, and the one-time message a form leaves for the page it redirects to."""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import parse_qs, quote, unquote, urlsplit

from fastapi import HTTPException, Request, Response, status
from fastapi.responses import HTMLResponse

from orchestrator.api import render
from orchestrator.api.gate import FORM_MAX_BODY
from orchestrator.services.context import ServiceContext
from orchestrator.services.tokens import Caller, Scope, authenticate, session_caller

COOKIE = "hso_dashboard"
FLASH = "hso_flash"  # the message a form's redirect leaves for the next page, read once
FLASH_LENGTH = 400
CSRF_FIELD = "csrf"
REFRESH_MS = 2000  # how often a live page (the overview, a job's page) fetches its parts
HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def bearer(request: Request) -> str | None:
    """The token of the Authorization header."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def presented(request: Request) -> str | None:
    """What the caller presents: a token in the Authorization header, else a session cookie."""
    return bearer(request) or request.cookies.get(COOKIE) or None


def caller_of(request: Request, ctx: ServiceContext) -> Caller | None:
    """The caller behind the request's token or dashboard session, if it may read."""
    token = bearer(request)
    if token is not None:
        caller = authenticate(ctx, token)
    else:
        cookie = request.cookies.get(COOKIE)
        caller = session_caller(ctx, cookie) if cookie else None
    return caller if caller is not None and caller.allows(Scope.READ) else None


def html(body: str, code: int = status.HTTP_200_OK) -> HTMLResponse:
    """A page with the dashboard's security headers."""
    return HTMLResponse(body, status_code=code, headers=HEADERS)


def same_origin(request: Request) -> None:
    """Refuse a form posted from another site (login CSRF), by Sec-Fetch-Site or Origin."""
    site = request.headers.get("sec-fetch-site")
    origin = request.headers.get("origin")
    foreign = site not in (None, "same-origin", "none")
    if origin and origin != "null":
        foreign = foreign or urlsplit(origin).netloc != request.headers.get("host")
    if foreign:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "forms are accepted from this site only")


async def form_fields(request: Request) -> dict[str, list[str]]:
    """The fields of a urlencoded form (empty when it cannot be read)."""
    body = await request.body()  # the gate refuses (413) a form past FORM_MAX_BODY
    if len(body) > FORM_MAX_BODY:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, "the form is too large")
    try:
        return parse_qs(body.decode(), max_num_fields=120)
    except (UnicodeDecodeError, ValueError):
        return {}


def field(fields: dict[str, list[str]], name: str) -> str:
    """One form field, stripped ('' when missing)."""
    return (fields.get(name) or [""])[0].strip()


# -- CSRF: a token bound to the credential the browser presents -------------------------------

_CSRF_LABEL = b"hsts-orchestrator dashboard form"


def csrf_token(credential: str) -> str:
    """The CSRF token of forms for this session (an HMAC keyed by the session's secret, which
    another site can neither read nor derive from the token)."""
    return hmac.new(credential.encode(), _CSRF_LABEL, hashlib.sha256).hexdigest()


def csrf_valid(request: Request, fields: dict[str, list[str]]) -> bool:
    """Whether the form carries the CSRF token of the request's own session (constant time)."""
    credential = presented(request)
    given = field(fields, CSRF_FIELD)
    if credential is None or not given:
        return False
    return hmac.compare_digest(csrf_token(credential).encode(), given.encode())


# -- the message a form leaves for the page it redirects to -----------------------------------


def leave_message(response: Response, kind: str, text: str) -> None:
    """Keep ``text`` (kind ok or error) for the next page this browser shows."""
    value = quote(f"{kind}:{text[:FLASH_LENGTH]}", safe="")
    response.set_cookie(FLASH, value, max_age=60, path="/", httponly=True, samesite="strict")


def left_message(request: Request) -> tuple[str, str] | None:
    """The message a form left: (kind, text)."""
    raw = request.cookies.get(FLASH)
    if not raw:
        return None
    kind, _, text = unquote(raw).partition(":")
    return ("error" if kind != "ok" else "ok"), text[:FLASH_LENGTH]


def forget_message(response: Response) -> None:
    """Drop the message once a page showed it."""
    response.delete_cookie(FLASH, path="/", httponly=True, samesite="strict")


def local_path(target: str, default: str) -> str:
    """``target`` if it is a path on this site (never another host), else ``default``."""
    parts = urlsplit(target)
    if not target.startswith("/") or target.startswith("//") or parts.scheme or parts.netloc:
        return default
    if "\\" in target or any(ord(c) < 32 for c in target):
        return default
    return target


# -- pages -------------------------------------------------------------------------------------

SIGN_IN_FIRST = "Sign in to see this page."


def console_page(
    request: Request,
    ctx: ServiceContext,
    caller: Caller,
    template: str,
    code: int = status.HTTP_200_OK,
    **values: object,
) -> HTMLResponse:
    """A page for a signed-in caller: its name, the message a form left for it, and what its
    forms need (the CSRF token; whether the caller may act at all)."""
    message = left_message(request)
    body = render.page(
        template,
        token_name=caller.name,
        message=message,
        can_act=caller.allows(Scope.SUBMIT),
        csrf=csrf_token(presented(request) or ""),
        now=ctx.now(),
        **values,
    )
    answer = html(body, code)
    if message is not None:
        forget_message(answer)
    return answer


def not_signed_in() -> HTTPException:
    """The 401 of a live page's fragment asked without a valid session (its script then goes
    to the sign-in form)."""
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        "sign in at / or give a valid API token: Authorization: Bearer <token>",
        headers={"WWW-Authenticate": "Bearer"},
    )


def sign_in_page(request: Request, message: str | None = SIGN_IN_FIRST) -> HTMLResponse:
    """The sign-in form, for a page asked without a valid session (the dead cookie cleared)."""
    code = status.HTTP_401_UNAUTHORIZED if presented(request) else status.HTTP_200_OK
    answer = html(render.page("sign_in.html", message=message), code)
    answer.delete_cookie(COOKIE, path="/")
    return answer
