"""Node API credentials: Basic (node user or access key) and Bearer with X-Aspera-AccessKey."""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from hstssim.config import NodeConfig


@dataclass(frozen=True)
class Principal:
    """Who made a request: kind is "node_user", "access_key" or "bearer"."""

    kind: str
    name: str

    @property
    def access_key(self) -> str | None:
        """Return the access key id behind the credential, if any."""
        return None if self.kind == "node_user" else self.name


def _same(given: str, expected: str) -> bool:
    """Compare secrets in constant time."""
    return hmac.compare_digest(given.encode(), expected.encode())


def check_basic(config: NodeConfig, encoded: str) -> Principal | None:
    """Check a base64 "user:secret" pair against the node user and the access keys."""
    try:
        user, _, secret = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    if user == config.node_user and _same(secret, config.node_password):
        return Principal("node_user", user)
    expected = config.access_keys.get(user)
    if expected is not None and _same(secret, expected):
        return Principal("access_key", user)
    return None


def check_bearer(config: NodeConfig, token: str, access_key: str | None) -> Principal | None:
    """Check a bearer token against the access key it must be presented with."""
    owner = config.bearer_tokens.get(token)
    if owner is None or access_key is None or not _same(access_key, owner):
        return None
    return Principal("bearer", owner)


def authenticate(
    config: NodeConfig, headers: Mapping[str, str], allow_bearer: bool = True
) -> Principal | None:
    """Return the caller's principal from the Authorization header, or None if refused."""
    value = headers.get("authorization", "")
    scheme, _, credential = value.partition(" ")
    if scheme.lower() == "basic":
        return check_basic(config, credential.strip())
    if scheme.lower() == "bearer" and allow_bearer:
        return check_bearer(config, credential.strip(), headers.get("x-aspera-accesskey"))
    return None
