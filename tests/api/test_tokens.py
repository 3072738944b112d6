"""Token lifecycle: list and revoke (admin route), expiry, last use; dashboard sessions of
their own that sign-out ends on the server."""

from __future__ import annotations

import re
from datetime import timedelta

from orchestrator.api.routes.dashboard import COOKIE
from orchestrator.services.context import utcnow
from orchestrator.services.tokens import Scope, create_token
from tests.api.conftest import Api


def test_admins_list_tokens_without_their_secrets_and_see_their_last_use(api: Api) -> None:
    assert api.client.get("/api/v1/tokens", headers=api.headers("submit")).status_code == 403
    api.client.get("/api/v1/jobs", headers=api.headers("read"))
    listed = api.client.get("/api/v1/tokens", headers=api.headers("admin"))
    assert listed.status_code == 200, listed.text
    by_name = {t["name"]: t for t in listed.json()}
    read = by_name["test-read"]
    assert read["scopes"] == ["read"] and read["state"] == "active" and not read["revoked"]
    assert read["last_used_at"] is not None and read["expires_at"] is None
    for secret in api.tokens.values():
        assert secret.split("_", 2)[2] not in listed.text
    assert "secret_hash" not in listed.text


def test_a_revoked_token_stops_at_once(api: Api) -> None:
    listed = api.client.get("/api/v1/tokens", headers=api.headers()).json()
    submit_id = next(t["id"] for t in listed if t["name"] == "test-submit")
    revoked = api.client.post(f"/api/v1/tokens/{submit_id}/revoke", headers=api.headers())
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["state"] == "revoked"
    assert api.client.get("/api/v1/jobs", headers=api.headers("submit")).status_code == 401
    assert api.client.post("/api/v1/tokens/99999/revoke", headers=api.headers()).status_code == 404


def test_an_expired_token_is_refused_and_listed_as_expired(api: Api) -> None:
    with api.stack.ctx.sessions() as session:
        old = create_token(
            session, "short", [Scope.READ], expires_at=utcnow() - timedelta(seconds=1)
        )
        soon = create_token(session, "later", [Scope.READ], expires_at=utcnow() + timedelta(1))
        session.commit()
    headers = {"Authorization": f"Bearer {old.secret}"}
    assert api.client.get("/api/v1/jobs", headers=headers).status_code == 401
    later = {"Authorization": f"Bearer {soon.secret}"}
    assert api.client.get("/api/v1/jobs", headers=later).status_code == 200
    states = {
        t["name"]: t["state"]
        for t in api.client.get("/api/v1/tokens", headers=api.headers()).json()
    }
    assert states["short"] == "expired" and states["later"] == "active"


def _signed_in_cookie(api: Api) -> str:
    answer = api.client.post(
        "/dashboard/sign-in", data={"token": api.tokens["read"]}, follow_redirects=False
    )
    assert answer.status_code == 303, answer.text
    header = answer.headers["set-cookie"]
    found = re.match(rf"{COOKIE}=([^;]+);", header)
    assert found, header
    max_age = int(re.search(r"Max-Age=(\d+)", header, re.I).group(1))  # type: ignore[union-attr]
    assert 8 * 3600 - 60 <= max_age <= 8 * 3600, "the session's lifetime"
    return found.group(1)


def test_the_cookie_holds_a_session_of_its_own_that_sign_out_ends_on_the_server(
    api: Api,
) -> None:
    cookie = _signed_in_cookie(api)
    token = api.tokens["read"]
    assert (
        cookie.startswith("hsd_") and token not in cookie and token.split("_", 2)[2] not in cookie
    )
    assert api.client.get("/dashboard/panels").status_code == 200
    out = api.client.post("/dashboard/sign-out", follow_redirects=False)
    assert out.status_code == 303
    # A copy of the cookie kept elsewhere (another tab, a stolen cookie) is worthless now.
    api.client.cookies.set(COOKIE, cookie)
    assert api.client.get("/dashboard/panels").status_code == 401
    assert api.client.get("/api/v1/jobs", headers={"Authorization": f"Bearer {token}"}).is_success


def test_a_session_ends_with_its_lifetime_and_with_its_token(api: Api) -> None:
    ctx = api.stack.ctx
    cookie = _signed_in_cookie(api)
    assert api.client.get("/dashboard/panels").status_code == 200
    real = ctx.clock
    ctx.clock = lambda: real() + timedelta(hours=8, seconds=1)
    try:
        assert api.client.get("/dashboard/panels").status_code == 401
    finally:
        ctx.clock = real
    assert api.client.get("/dashboard/panels").status_code == 200
    read_id = next(
        t["id"]
        for t in api.client.get("/api/v1/tokens", headers=api.headers()).json()
        if t["name"] == "test-read"
    )
    api.client.post(f"/api/v1/tokens/{read_id}/revoke", headers=api.headers())
    api.client.cookies.set(COOKIE, cookie)
    assert api.client.get("/dashboard/panels").status_code == 401
