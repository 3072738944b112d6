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
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.responses import HTMLResponse, RedirectResponse

from orchestrator.api import render
from orchestrator.api.deps import ContextDep
from orchestrator.api.web import (
    COOKIE,
    REFRESH_MS,
    caller_of,
    console_page,
    csrf_token,
    field,
    form_fields,
    html,
    not_signed_in,
    presented,
    same_origin,
)
from orchestrator.domain.states import UNDER_WAY
from orchestrator.services.context import ServiceContext
from orchestrator.services.tokens import Scope, authenticate, close_session, open_session
from orchestrator.services.views.overview import dashboard

router = APIRouter(include_in_schema=False)

STATIC = {
    "dashboard.css": "text/css",
    "dashboard.js": "text/javascript",
    "favicon.svg": "image/svg+xml",
}


def _sign_in(message: str | None, code: int) -> HTMLResponse:
    answer = html(render.page("sign_in.html", message=message), code)
    answer.delete_cookie(COOKIE, path="/")
    return answer


def _panels_values(ctx: ServiceContext) -> dict[str, Any]:
    return {"overview": dashboard(ctx), "ACTIVE": UNDER_WAY, "refresh_ms": REFRESH_MS}


@router.get("/", response_class=HTMLResponse)
def home(request: Request, ctx: ContextDep) -> HTMLResponse:
    """The dashboard, or the sign-in form when the caller has no valid token."""
    caller = caller_of(request, ctx)
    if caller is None:
        if presented(request):
            return _sign_in(
                "That session or token is not valid any more (signed out, expired, or its "
                "token revoked); sign in again.",
                status.HTTP_401_UNAUTHORIZED,
            )
        return _sign_in(None, status.HTTP_200_OK)
    return console_page(request, ctx, caller, "dashboard.html", **_panels_values(ctx))


@router.get("/dashboard/panels", response_class=HTMLResponse)
def panels(request: Request, ctx: ContextDep) -> HTMLResponse:
    """The dashboard's panels alone: what the page's script fetches every few seconds."""
    caller = caller_of(request, ctx)
    if caller is None:
        raise not_signed_in()
    body = render.page(
        "panels.html",
        can_act=caller.allows(Scope.SUBMIT),
        csrf=csrf_token(presented(request) or ""),
        **_panels_values(ctx),
    )
    return html(body)


async def form_token(request: Request) -> str:
    """The ``token`` field of the sign-in form ('' when missing)."""
    return field(await form_fields(request), "token")


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
