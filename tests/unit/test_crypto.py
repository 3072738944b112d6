"""Node secrets at rest: MultiFernet with rotation, and the embedded key file."""

from __future__ import annotations

import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr

from orchestrator.crypto import SecretBox, secret_box
from orchestrator.errors import ConfigError


def test_rotation_reads_old_secrets_and_rewrites_them_with_the_new_key() -> None:
    old, new = Fernet.generate_key(), Fernet.generate_key()
    blob = SecretBox([old]).encrypt(SecretStr("s3cret"))
    rotated_box = SecretBox([new, old])
    assert rotated_box.decrypt(blob).get_secret_value() == "s3cret"
    rewritten = rotated_box.rotate(blob)
    assert SecretBox([new]).decrypt(rewritten).get_secret_value() == "s3cret"
    with pytest.raises(ConfigError, match="cannot be decrypted"):
        SecretBox([new]).decrypt(blob)


def test_keys_from_the_setting_and_a_bad_key_is_a_clear_error(tmp_path: Path) -> None:
    key = Fernet.generate_key().decode()
    box = secret_box(SecretStr(f" {key} , {Fernet.generate_key().decode()}"), tmp_path)
    assert box.decrypt(box.encrypt(SecretStr("x"))).get_secret_value() == "x"
    with pytest.raises(ConfigError, match="not a Fernet key"):
        secret_box(SecretStr("not-a-key"), tmp_path)
    assert not (tmp_path / "secret.key").exists()


def test_the_embedded_key_file_is_created_once_and_private(tmp_path: Path) -> None:
    with ThreadPoolExecutor(8) as pool:
        boxes = list(pool.map(lambda _: secret_box(None, tmp_path), range(8)))
    blob = boxes[0].encrypt(SecretStr("same key everywhere"))
    assert all(b.decrypt(blob).get_secret_value() == "same key everywhere" for b in boxes)
    mode = stat.S_IMODE((tmp_path / "secret.key").stat().st_mode)
    assert mode & 0o077 == 0, "only the owner may read the key"
    assert [p.name for p in tmp_path.iterdir()] == ["secret.key"]
