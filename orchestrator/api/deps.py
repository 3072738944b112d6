"""Request dependencies: the service context, a session, and the caller's token and scope."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from orchestrator.db.tables import ApiTokenRow
from orchestrator.services.context import ServiceContext
from orchestrator.services.tokens import Scope, allows, authenticate

_bearer = HTTPBearer(auto_error=False, description="an API token: hsts-orchestrator token create")


def get_context(request: Request) -> ServiceContext:
    """The app's ServiceContext."""
    ctx: ServiceContext = request.app.state.ctx
    return ctx


ContextDep = Annotated[ServiceContext, Depends(get_context)]


def get_session(ctx: ContextDep) -> Iterator[Session]:
    """A session for one request."""
    with ctx.sessions() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def require(scope: Scope) -> Callable[..., ApiTokenRow]:
    """A dependency that admits only tokens holding ``scope`` (401 without, 403 short)."""

    def check(
        session: SessionDep,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> ApiTokenRow:
        row = authenticate(session, credentials.credentials) if credentials else None
        if row is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "give a valid API token: Authorization: Bearer <token>",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not allows(row, scope):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"this token lacks the {scope} scope")
        return row

    return check


ReadDep = Annotated[ApiTokenRow, Depends(require(Scope.READ))]
SubmitDep = Annotated[ApiTokenRow, Depends(require(Scope.SUBMIT))]
AdminDep = Annotated[ApiTokenRow, Depends(require(Scope.ADMIN))]
