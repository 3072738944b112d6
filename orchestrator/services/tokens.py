"""API tokens: random secrets shown once, stored as SHA-256, with scopes read < submit < admin."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from orchestrator.db.tables import ApiTokenRow
from orchestrator.services.context import ServiceContext, utcnow

TOKEN_PREFIX = "hso_"  # noqa: S105  (a marker, not a secret)


class Scope(StrEnum):
    """What a token may do; each scope includes the ones before it."""

    READ = "read"
    SUBMIT = "submit"
    ADMIN = "admin"


_RANK = {Scope.READ: 0, Scope.SUBMIT: 1, Scope.ADMIN: 2}


@dataclass(frozen=True)
class IssuedToken:
    """A new token: the secret is shown once and never stored."""

    id: int
    name: str
    scopes: list[str]
    secret: str


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class Caller:
    """Who a valid token belongs to, and what it may do."""

    id: int
    name: str
    scopes: tuple[str, ...]

    def allows(self, needed: Scope) -> bool:
        """Whether the token's scopes cover ``needed``."""
        known = {scope.value for scope in Scope}
        return any(_RANK[Scope(s)] >= _RANK[needed] for s in self.scopes if s in known)


def issue_token(
    ctx: ServiceContext, name: str, scopes: list[Scope], *, replace: bool = False
) -> IssuedToken:
    """A new API token with ``scopes``; its secret is shown once and only its hash is stored.

    ``replace`` revokes the live tokens of that name first.
    """
    with ctx.sessions() as session:
        if replace:
            session.execute(
                update(ApiTokenRow)
                .where(ApiTokenRow.name == name, ApiTokenRow.revoked.is_(False))
                .values(revoked=True)
            )
        issued = create_token(session, name, scopes)
        session.commit()
        return issued


def create_token(session: Session, name: str, scopes: list[Scope]) -> IssuedToken:
    """Issue a token inside the caller's transaction."""
    if not scopes:
        raise ValueError("a token needs at least one scope")
    prefix = secrets.token_hex(4)
    secret = f"{TOKEN_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    row = ApiTokenRow(
        name=name,
        prefix=prefix,
        secret_hash=_digest(secret),
        scopes=sorted({s.value for s in scopes}),
    )
    session.add(row)
    session.flush()
    return IssuedToken(row.id, name, row.scopes, secret)


def authenticate(ctx: ServiceContext, presented: str) -> Caller | None:
    """The live token this secret belongs to, or None; compares in constant time."""
    if not presented.startswith(TOKEN_PREFIX):
        return None
    prefix = presented[len(TOKEN_PREFIX) :].split("_", 1)[0]
    with ctx.sessions() as session:
        row = session.scalar(select(ApiTokenRow).where(ApiTokenRow.prefix == prefix))
        if row is None or row.revoked:
            return None
        if not hmac.compare_digest(row.secret_hash, _digest(presented)):
            return None
        now = utcnow()
        if row.last_used_at is None or now - row.last_used_at > timedelta(minutes=1):
            row.last_used_at = now
            session.commit()
        return Caller(row.id, row.name, tuple(row.scopes))
