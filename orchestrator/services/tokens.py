"""API tokens and dashboard sessions.

Tokens: random secrets shown once, stored as SHA-256, with scopes read < submit < admin, an
optional expiry, the time they were last used; they can be listed and revoked.

Dashboard sessions: signing in with a token opens a session of its own (a random secret in
the cookie, its SHA-256 in ``dashboard_sessions``), so the cookie never holds the API token.
A session ends when its lifetime is over, when the user signs out (the row is deleted), or
when its token is revoked or expires.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from orchestrator.db.tables import ApiTokenRow, DashboardSessionRow
from orchestrator.errors import OrchestratorError
from orchestrator.services.context import ServiceContext

TOKEN_PREFIX = "hso_"  # noqa: S105  (a marker, not a secret)
SESSION_PREFIX = "hsd_"
LAST_USED_EVERY = timedelta(minutes=1)  # last_used_at is written at most this often


class Scope(StrEnum):
    """What a token may do; each scope includes the ones before it."""

    READ = "read"
    SUBMIT = "submit"
    ADMIN = "admin"


_RANK = {Scope.READ: 0, Scope.SUBMIT: 1, Scope.ADMIN: 2}


class TokenNotFound(OrchestratorError):
    """No token has that id."""


@dataclass(frozen=True)
class IssuedToken:
    """A new token: the secret is shown once and never stored."""

    id: int
    name: str
    scopes: list[str]
    secret: str
    expires_at: datetime | None = None


@dataclass(frozen=True)
class TokenInfo:
    """A token as ``token list`` and the admin route show it (never its secret)."""

    id: int
    name: str
    prefix: str
    scopes: list[str]
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked: bool
    state: str  # active | expired | revoked


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class Caller:
    """Who a valid token belongs to, and what it may do."""

    id: int
    name: str
    scopes: tuple[str, ...]
    expires_at: datetime | None = None

    def allows(self, needed: Scope) -> bool:
        """Whether the token's scopes cover ``needed``."""
        known = {scope.value for scope in Scope}
        return any(_RANK[Scope(s)] >= _RANK[needed] for s in self.scopes if s in known)


def issue_token(
    ctx: ServiceContext,
    name: str,
    scopes: list[Scope],
    *,
    replace: bool = False,
    lifetime: timedelta | None = None,
) -> IssuedToken:
    """A new API token with ``scopes``; its secret is shown once and only its hash is stored.

    ``replace`` revokes the live tokens of that name first; ``lifetime`` makes it expire.
    """
    with ctx.sessions() as session:
        if replace:
            session.execute(
                update(ApiTokenRow)
                .where(ApiTokenRow.name == name, ApiTokenRow.revoked.is_(False))
                .values(revoked=True)
            )
        expires_at = ctx.now() + lifetime if lifetime is not None else None
        issued = create_token(session, name, scopes, expires_at=expires_at)
        session.commit()
        return issued


def create_token(
    session: Session, name: str, scopes: list[Scope], *, expires_at: datetime | None = None
) -> IssuedToken:
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
        expires_at=expires_at,
    )
    session.add(row)
    session.flush()
    return IssuedToken(row.id, name, row.scopes, secret, expires_at)


def _state(row: ApiTokenRow, now: datetime) -> str:
    if row.revoked:
        return "revoked"
    if row.expires_at is not None and row.expires_at <= now:
        return "expired"
    return "active"


def _info(row: ApiTokenRow, now: datetime) -> TokenInfo:
    return TokenInfo(
        id=row.id,
        name=row.name,
        prefix=row.prefix,
        scopes=list(row.scopes),
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        expires_at=row.expires_at,
        revoked=row.revoked,
        state=_state(row, now),
    )


def list_tokens(ctx: ServiceContext) -> list[TokenInfo]:
    """Every token, oldest first, with its state and when it was last used."""
    now = ctx.now()
    with ctx.sessions() as session:
        rows = session.scalars(select(ApiTokenRow).order_by(ApiTokenRow.id))
        return [_info(row, now) for row in rows]


def revoke_token(ctx: ServiceContext, token_id: int) -> TokenInfo:
    """Revoke a token (again: nothing changes); its dashboard sessions end with it."""
    with ctx.sessions() as session:
        row = session.get(ApiTokenRow, token_id)
        if row is None:
            raise TokenNotFound(f"no token with id {token_id} (see: token list)")
        row.revoked = True
        session.execute(delete(DashboardSessionRow).where(DashboardSessionRow.token_id == row.id))
        session.commit()
        return _info(row, ctx.now())


def authenticate(ctx: ServiceContext, presented: str) -> Caller | None:
    """The live token this secret belongs to, or None (revoked, expired, unknown); compares
    in constant time and notes when the token was last used."""
    if not presented.startswith(TOKEN_PREFIX):
        return None
    prefix = presented[len(TOKEN_PREFIX) :].split("_", 1)[0]
    now = ctx.now()
    with ctx.sessions() as session:
        row = session.scalar(select(ApiTokenRow).where(ApiTokenRow.prefix == prefix))
        if row is None or _state(row, now) != "active":
            return None
        if not hmac.compare_digest(row.secret_hash, _digest(presented)):
            return None
        _note_use(session, row, now)
        return Caller(row.id, row.name, tuple(row.scopes), row.expires_at)


def _note_use(session: Session, row: ApiTokenRow, now: datetime) -> None:
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_EVERY:
        row.last_used_at = now
        session.commit()


# -- dashboard sessions -----------------------------------------------------------------------


@dataclass(frozen=True)
class DashboardSession:
    """A new sign-in: the secret goes in the cookie, only its hash is stored."""

    secret: str
    expires_at: datetime


def open_session(ctx: ServiceContext, caller: Caller, lifetime: timedelta) -> DashboardSession:
    """A session for a token that just signed in; it ends by ``lifetime`` at the latest (or
    when the token expires, if that is sooner). Sessions over are cleared on the way."""
    now = ctx.now()
    ends = now + lifetime
    if caller.expires_at is not None:
        ends = min(ends, caller.expires_at)
    secret = f"{SESSION_PREFIX}{secrets.token_urlsafe(32)}"
    with ctx.sessions() as session:
        session.execute(delete(DashboardSessionRow).where(DashboardSessionRow.expires_at <= now))
        session.add(
            DashboardSessionRow(
                secret_hash=_digest(secret), token_id=caller.id, created_at=now, expires_at=ends
            )
        )
        session.commit()
    return DashboardSession(secret, ends)


def session_caller(ctx: ServiceContext, presented: str) -> Caller | None:
    """Whose dashboard session this cookie holds, or None: unknown, signed out, over, or its
    token revoked or expired."""
    if not presented.startswith(SESSION_PREFIX):
        return None
    now = ctx.now()
    with ctx.sessions() as session:
        found = session.execute(
            select(DashboardSessionRow, ApiTokenRow)
            .join(ApiTokenRow, ApiTokenRow.id == DashboardSessionRow.token_id)
            .where(DashboardSessionRow.secret_hash == _digest(presented))
        ).one_or_none()
        if found is None:
            return None
        row, token = found
        if row.expires_at <= now or _state(token, now) != "active":
            return None
        _note_use(session, token, now)
        return Caller(token.id, token.name, tuple(token.scopes), token.expires_at)


def close_session(ctx: ServiceContext, presented: str) -> None:
    """End a dashboard session (sign-out): the cookie is worthless from now on."""
    with ctx.sessions() as session:
        session.execute(
            delete(DashboardSessionRow).where(DashboardSessionRow.secret_hash == _digest(presented))
        )
        session.commit()
