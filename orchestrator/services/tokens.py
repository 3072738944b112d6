"""API tokens: random secrets shown once, stored as SHA-256, with scopes read < submit < admin."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from orchestrator.db.tables import ApiTokenRow
from orchestrator.services.context import utcnow

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


def create_token(session: Session, name: str, scopes: list[Scope]) -> IssuedToken:
    """Issue a token (the caller commits)."""
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


def authenticate(session: Session, presented: str) -> ApiTokenRow | None:
    """The live token this secret belongs to, or None; compares in constant time."""
    if not presented.startswith(TOKEN_PREFIX):
        return None
    prefix = presented[len(TOKEN_PREFIX) :].split("_", 1)[0]
    row = session.scalar(select(ApiTokenRow).where(ApiTokenRow.prefix == prefix))
    if row is None or row.revoked:
        return None
    if not hmac.compare_digest(row.secret_hash, _digest(presented)):
        return None
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at > timedelta(minutes=1):
        row.last_used_at = now
        session.commit()
    return row


def allows(row: ApiTokenRow, needed: Scope) -> bool:
    """Whether the token's scopes cover ``needed``."""
    known = {scope.value for scope in Scope}
    return any(_RANK[Scope(s)] >= _RANK[needed] for s in row.scopes if s in known)
