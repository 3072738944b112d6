"""The operator's dashboard at ``/``: server-rendered panels, refreshed by a few lines of JS.

Sign-in takes an API token in a form, checks it and opens a dashboard session of its own: the
HttpOnly, SameSite=Strict cookie holds the session's secret, never the token, so neither the
page's script, a URL nor the browser's cookie store ever holds the token. Signing out ends the
session on the server; it also ends after ORCH_DASHBOARD_SESSION_SECONDS, or with its token. A
Bearer header works as well.
"""

from __future__ import annotations

from datetime import timedelta
from importlib import resources
from typing import Annotated
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.responses import HTMLResponse, RedirectResponse

from orchestrator.api import render
from orchestrator.api.deps import ContextDep
from orchestrator.api.gate import FORM_MAX_BODY
from orchestrator.domain.states import UNDER_WAY, JobState
from orchestrator.services.context import ServiceContext
from orchestrator.services.tokens import (
    Caller,
    Scope,
    authenticate,
    close_session,
    open_session,
    session_caller,
)
from orchestrator.services.views.overview import dashboard

router = APIRouter(include_in_schema=False)

COOKIE = "hso_dashboard"
REFRESH_MS = 2000
STATIC = {
    "dashboard.css": "text/css",
    "dashboard.js": "text/javascript",
    "favicon.svg": "image/svg+xml",
}
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


def _bearer(request: Request) -> str | None:
    """The token of the Authorization header."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _presented(request: Request) -> str | None:
    """What the caller presents: a token in the Authorization header, else a session cookie."""
    return _bearer(request) or request.cookies.get(COOKIE) or None


def _caller(request: Request, ctx: ServiceContext) -> Caller | None:
    token = _bearer(request)
    if token is not None:
        caller = authenticate(ctx, token)
    else:
        cookie = request.cookies.get(COOKIE)
        caller = session_caller(ctx, cookie) if cookie else None
    return caller if caller is not None and caller.allows(Scope.READ) else None


def _html(body: str, code: int = status.HTTP_200_OK) -> HTMLResponse:
    return HTMLResponse(body, status_code=code, headers=HEADERS)


def _sign_in(message: str | None, code: int) -> HTMLResponse:
    answer = _html(render.page("sign_in.html", message=message), code)
    answer.delete_cookie(COOKIE, path="/")
    return answer


def _panels_values(ctx: ServiceContext) -> dict[str, object]:
    return {
        "overview": dashboard(ctx),
        "S": JobState,
        "ACTIVE": UNDER_WAY,
        "refresh_ms": REFRESH_MS,
    }


@router.get("/", response_class=HTMLResponse)
def home(request: Request, ctx: ContextDep) -> HTMLResponse:
    """The dashboard, or the sign-in form when the caller has no valid token."""
    caller = _caller(request, ctx)
    if caller is None:
        if _presented(request):
            return _sign_in(
                "That session or token is not valid any more (signed out, expired, or its "
                "token revoked); sign in again.",
                status.HTTP_401_UNAUTHORIZED,
            )
        return _sign_in(None, status.HTTP_200_OK)
    return _html(render.page("dashboard.html", token_name=caller.name, **_panels_values(ctx)))


@router.get("/dashboard/panels", response_class=HTMLResponse)
def panels(request: Request, ctx: ContextDep) -> HTMLResponse:
    """The dashboard's panels alone: what the page's script fetches every few seconds."""
    if _caller(request, ctx) is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "sign in at / or give a valid API token: Authorization: Bearer <token>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return _html(render.page("panels.html", **_panels_values(ctx)))


def same_origin(request: Request) -> None:
    """Refuse a form posted from another site (login CSRF), by Sec-Fetch-Site or Origin."""
    site = request.headers.get("sec-fetch-site")
    origin = request.headers.get("origin")
    foreign = site not in (None, "same-origin", "none")
    if origin and origin != "null":
        foreign = foreign or urlsplit(origin).netloc != request.headers.get("host")
    if foreign:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "forms are accepted from this site only")


async def form_token(request: Request) -> str:
    """The ``token`` field of a urlencoded form ('' when missing)."""
    body = await request.body()  # the gate refuses (413) a form past FORM_MAX_BODY
    if len(body) > FORM_MAX_BODY:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, "token: the form is too large")
    try:
        fields = parse_qs(body.decode(), max_num_fields=10)
    except (UnicodeDecodeError, ValueError):
        return ""
    return (fields.get("token") or [""])[0].strip()


@router.post("/dashboard/sign-in", dependencies=[Depends(same_origin)])
def sign_in(
    request: Request, ctx: ContextDep, token: Annotated[str, Depends(form_token)]
) -> Response:
    """Check the token and open a dashboard session (its own secret in the cookie); the token
    is never shown back nor kept in the browser."""
    if not token:
        return _sign_in("token: paste an API token.", status.HTTP_422_UNPROCESSABLE_CONTENT)
    caller = authenticate(ctx, token)
    if caller is None:
        return _sign_in(
            "token: not a valid API token (revoked, or mistyped).", status.HTTP_401_UNAUTHORIZED
        )
    if not caller.allows(Scope.READ):
        return _sign_in("token: this token lacks the read scope.", status.HTTP_403_FORBIDDEN)
    lifetime = ctx.settings.dashboard_session_seconds
    opened = open_session(ctx, caller, timedelta(seconds=lifetime))
    answer = RedirectResponse("/", status.HTTP_303_SEE_OTHER, headers={"Cache-Control": "no-store"})
    answer.set_cookie(
        COOKIE,
        opened.secret,
        max_age=max(1, int((opened.expires_at - ctx.now()).total_seconds())),
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return answer


@router.post("/dashboard/sign-out", dependencies=[Depends(same_origin)])
def sign_out(request: Request, ctx: ContextDep) -> Response:
    """End the session on the server, then forget its cookie."""
    cookie = request.cookies.get(COOKIE)
    if cookie:
        close_session(ctx, cookie)
    answer = RedirectResponse("/", status.HTTP_303_SEE_OTHER, headers={"Cache-Control": "no-store"})
    answer.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return answer


@router.get("/dashboard/static/{name}")
def static(name: str) -> Response:
    """The page's stylesheet and script (no build step: the files as they are in the package)."""
    if name not in STATIC:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no static file {name}")
    body = resources.files("orchestrator.api").joinpath("static", name).read_bytes()
    return Response(
        body,
        media_type=STATIC[name],
        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
    )
