"""Request dependencies: the service context, and the caller's token and scope."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from orchestrator.api.gate import CALLER
from orchestrator.services.context import ServiceContext
from orchestrator.services.tokens import Caller, Scope, authenticate

_bearer = HTTPBearer(auto_error=False, description="an API token: hsts-orchestrator token create")


def get_context(request: Request) -> ServiceContext:
    """The app's ServiceContext."""
    ctx: ServiceContext = request.app.state.ctx
    return ctx


ContextDep = Annotated[ServiceContext, Depends(get_context)]


def require(scope: Scope) -> Callable[..., Caller]:
    """A dependency that admits only tokens holding ``scope`` (401 without, 403 short)."""

    def check(
        request: Request,
        ctx: ContextDep,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Caller:
        # The gate checked the token of a write before its body was read: not twice.
        caller: Caller | None = getattr(request.state, CALLER, None)
        if caller is None and credentials:
            caller = authenticate(ctx, credentials.credentials)
        if caller is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "give a valid API token: Authorization: Bearer <token>",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not caller.allows(scope):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"this token lacks the {scope} scope")
        return caller

    return check


ReadDep = Annotated[Caller, Depends(require(Scope.READ))]
SubmitDep = Annotated[Caller, Depends(require(Scope.SUBMIT))]
AdminDep = Annotated[Caller, Depends(require(Scope.ADMIN))]
