"""`token create --expires-in`, `token list` and `token revoke`, on the database directly."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from orchestrator.bootstrap import opened
from orchestrator.cli import demo, main
from orchestrator.cli.local import local_settings
from orchestrator.services.tokens import authenticate


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

    assert main(["token", "list", "-o", "json"]) == 0
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


def test_the_demo_token_is_kept_across_runs_unless_a_new_one_is_asked(data_dir: Path) -> None:
    env_file = data_dir / demo.ENV_FILE
    with opened(local_settings()) as ctx:
        first, fresh = demo.demo_token(ctx, demo.previous_token(env_file), new=False)
        assert fresh
        demo.write_env_file(
            env_file, api_url="http://127.0.0.1:8000", token=first, broker_url="redis://x"
        )
        assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
        assert demo.demo_token(ctx, demo.previous_token(env_file), new=False) == (first, False)
        second, fresh = demo.demo_token(ctx, demo.previous_token(env_file), new=True)
        assert fresh and second != first
        assert authenticate(ctx, first) is None, "the earlier demo token is revoked"
    sourced = subprocess.run(
        ["bash", "-c", f"source {env_file} && echo $ORCH_API_URL $ORCH_API_TOKEN"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert sourced.stdout.split() == ["http://127.0.0.1:8000", first]
