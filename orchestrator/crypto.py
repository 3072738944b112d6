"""Encryption of node secrets at rest with MultiFernet (newest key first; rotation)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pydantic import SecretStr

from orchestrator.errors import ConfigError


class SecretBox:
    """Encrypts with the first key, decrypts with any; ``rotate`` re-encrypts with the first."""

    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise ConfigError("at least one Fernet key is needed to store node secrets")
        try:
            self._fernet = MultiFernet([Fernet(k) for k in keys])
        except ValueError:
            raise ConfigError("ORCH_SECRET_KEYS holds a key that is not a Fernet key") from None

    def encrypt(self, secret: SecretStr) -> bytes:
        """The secret, encrypted."""
        return self._fernet.encrypt(secret.get_secret_value().encode())

    def decrypt(self, blob: bytes) -> SecretStr:
        """The secret back; ConfigError if no configured key opens it."""
        try:
            return SecretStr(self._fernet.decrypt(blob).decode())
        except InvalidToken:
            raise ConfigError(
                "a stored node secret cannot be decrypted with ORCH_SECRET_KEYS "
                "(was a key removed before rotation?)"
            ) from None

    def rotate(self, blob: bytes) -> bytes:
        """The same secret encrypted with the newest key."""
        return self._fernet.rotate(blob)


def secret_box(keys: SecretStr | None, data_dir: Path) -> SecretBox:
    """A SecretBox from ORCH_SECRET_KEYS, or from a key file kept in data_dir when unset."""
    if keys is not None and keys.get_secret_value().strip():
        raw = [k.strip().encode() for k in keys.get_secret_value().split(",") if k.strip()]
        return SecretBox(raw)
    return SecretBox([_local_key(data_dir)])


def _local_key(data_dir: Path) -> bytes:
    """The embedded stack's own key, created once (atomically) and readable by its owner only."""
    path = data_dir / "secret.key"
    if not path.exists():
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=data_dir, prefix=".secret.key.")
        try:
            os.write(fd, Fernet.generate_key())
        finally:
            os.close(fd)
        try:
            os.link(temp, path)  # fails if another process created the key first: keep theirs
        except FileExistsError:
            pass
        finally:
            os.unlink(temp)
    return path.read_bytes().strip()
