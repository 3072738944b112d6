"""/api/v1/tokens: the API tokens (admin): list them, revoke one. Secrets are never shown."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, Field

from orchestrator.api.deps import AdminDep, ContextDep
from orchestrator.api.schemas import error_responses
from orchestrator.services.tokens import TokenInfo, list_tokens, revoke_token

router = APIRouter(prefix="/api/v1/tokens", tags=["tokens"])

ERRORS = error_responses({404: "no such token"})


class TokenOut(BaseModel):
    """A token without its secret: who it is for, what it may do, and whether it still works."""

    id: int
    name: str
    prefix: str = Field(description="the part after hso_ that names the token in logs")
    scopes: list[str]
    created_at: datetime
    last_used_at: datetime | None = Field(description="to the minute")
    expires_at: datetime | None = Field(description="null: never")
    revoked: bool
    state: str = Field(description="active, expired or revoked")


def _out(info: TokenInfo) -> TokenOut:
    return TokenOut.model_validate(info, from_attributes=True)


@router.get("", response_model=list[TokenOut], responses=ERRORS, summary="List tokens")
def list_all(ctx: ContextDep, _: AdminDep) -> list[TokenOut]:
    """Every token, oldest first, with when it was last used and when it expires."""
    return [_out(info) for info in list_tokens(ctx)]


@router.post(
    "/{token_id}/revoke", response_model=TokenOut, responses=ERRORS, summary="Revoke a token"
)
def revoke(token_id: int, ctx: ContextDep, _: AdminDep) -> TokenOut:
    """Revoke a token at once; the dashboard sessions opened with it end too."""
    return _out(revoke_token(ctx, token_id))
