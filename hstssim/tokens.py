"""Aspera-style transfer tokens ("AT...TA"), sealed with AES-GCM under the issuing node's key."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_AAD = b"hstssim-transfer-token-v1"
_NONCE_BYTES = 12
_MARKERS = {"send": "ATV7", "receive": "ATM2"}


class TokenError(Exception):
    """The token cannot authorise a session; the message says why (for logs, not clients)."""


@dataclass(frozen=True)
class TokenClaims:
    """What a token grants: who issued it, to which user, which way, which paths, until when."""

    node_id: str
    user: str
    direction: str
    destinations: tuple[str, ...]
    sources: tuple[str, ...]
    issued_at: float
    expires_at: float


def _aes_key(key: bytes) -> bytes:
    """Return a valid AES key: the key itself if 16/24/32 bytes long, else its SHA-256."""
    if len(key) in (16, 24, 32):
        return key
    return hashlib.sha256(key).digest()


class TokenIssuer:
    """Issues tokens for one node and opens the tokens that node issued."""

    def __init__(self, key: bytes, node_id: str) -> None:
        self._aead = AESGCM(_aes_key(key))
        self._node_id = node_id

    def issue(
        self,
        user: str,
        direction: str,
        destinations: list[str],
        sources: list[str],
        life_seconds: float,
    ) -> str:
        """Return a new token binding this node, the user, direction, paths and expiry."""
        now = time.time()
        claims = {
            "n": self._node_id,
            "u": user,
            "d": direction,
            "dst": destinations,
            "src": sources,
            "iat": now,
            "exp": now + life_seconds,
        }
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, json.dumps(claims).encode(), _AAD)
        body = base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")
        return f"{_MARKERS.get(direction, 'ATV7')}_{body}TA"

    def open(self, token: str) -> TokenClaims:
        """Decrypt and check a token; raise TokenError if it is garbage, foreign or expired."""
        if not (token.startswith("AT") and token.endswith("TA")) or "_" not in token:
            raise TokenError("not an Aspera transfer token")
        body = token[:-2].split("_", 1)[1]
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            plain = self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], _AAD)
            data = json.loads(plain)
            claims = TokenClaims(
                node_id=str(data["n"]),
                user=str(data["u"]),
                direction=str(data["d"]),
                destinations=tuple(str(p) for p in data["dst"]),
                sources=tuple(str(p) for p in data["src"]),
                issued_at=float(data["iat"]),
                expires_at=float(data["exp"]),
            )
        except (InvalidTag, ValueError, KeyError, TypeError) as exc:
            raise TokenError("token was not issued by this node or is corrupt") from exc
        if claims.node_id != self._node_id:
            raise TokenError("token was issued by another node")
        if claims.expires_at < time.time():
            raise TokenError("token expired")
        return claims
