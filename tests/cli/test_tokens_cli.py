"""`token create --expires-in`, `token list` and `token revoke`, on the database directly."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from orchestrator.cli import main


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in [n for n in os.environ if n.startswith("ORCH_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("ORCH_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["db", "upgrade"]) == 0
    return tmp_path


def test_tokens_are_listed_without_secrets_and_revoked_by_id(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert (
        main(["token", "create", "--name", "ci", "--scope", "submit", "--expires-in", "30d"]) == 0
    )
    created = capsys.readouterr()
    secret = created.out.strip()
    assert secret.startswith("hso_") and "expires" in created.err
    assert main(["token", "create", "--name", "me"]) == 0
    capsys.readouterr()

    assert main(["token", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    ci = next(t for t in listed if t["name"] == "ci")
    assert ci["scopes"] == ["submit"] and ci["state"] == "active" and ci["expires_at"]
    assert secret.split("_", 2)[2] not in json.dumps(listed)

    assert main(["token", "revoke", str(ci["id"])]) == 0
    assert f"token {ci['id']} 'ci' (hso_{ci['prefix']}) revoked" in capsys.readouterr().out
    assert main(["token", "list"]) == 0
    table = capsys.readouterr().out
    assert "revoked" in table and "active" in table and secret not in table

    assert main(["token", "revoke", "999"]) == 1
    assert "no token with id 999" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--expires-in", "0"], "--expires-in"),
        (["--expires-in", "soon"], "--expires-in"),
        (["--expires-in", "-1d"], "--expires-in"),
        (["--name", "ops\u202egnp.exe"], "U+202E"),
        (["--name", "n" * 129], "128 characters"),
    ],
)
def test_a_bad_expiry_or_name_is_a_usage_error(
    data_dir: Path, args: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["token", "create", "--name", "x", *args]) == 2
    assert says in capsys.readouterr().err
