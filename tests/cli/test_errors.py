"""CLI failures without a stack: bad input is exit 2 and one line, an unreachable API exit 1
with what to check; every command's --help teaches with an example.

Most run ``main()`` in this process (what the ``hsts-orchestrator`` script calls); a few run the
real command to check the process exit status and stderr end to end.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from orchestrator.cli import main
from tests.cli.conftest import Result, clean_env, cli, free_port


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> Result:
    """main(args) in this process, with its output."""
    code = main(args)
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)


@pytest.fixture(autouse=True)
def _no_orch_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("ORCH_")]:
        monkeypatch.delenv(name)


@pytest.fixture
def nowhere() -> dict[str, str]:
    """A client environment whose API URL nobody answers."""
    return clean_env(ORCH_API_URL=f"http://127.0.0.1:{free_port()}", ORCH_API_TOKEN="hso_x_y")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["jobs", "submit", "--from", "node-a", "--to", "node-b:in"], "expected NODE:PATH"),
        (["jobs", "submit", "--from", "node-a:x", "--to", "node-b"], "--to 'node-b'"),
        (["jobs", "submit", "--to", "node-b:in"], "Missing option '--from'"),
        (["jobs", "submit", "--from", "a:x", "--to", "b:y", "--label", "nokey"], "KEY=VALUE"),
        (["jobs", "submit", "--from", "a:x", "--to", "b:y", "--priority", "1000"], "--priority"),
        (["jobs", "submit", "--from", "a:x", "--to", "b:y", "--deadline", "soon"], "(2h, 90m)"),
        (["jobs", "submit", "--from", "a:x", "--to", "b:y", "--reject-late"], "needs a --deadline"),
        (["jobs", "list", "--state", "bogus"], "--state"),
        (["jobs", "frobnicate"], "No such command"),
        (["jobs", "list", "--api", "ftp://x"], "not an http(s) URL"),
        (["nodes", "add", "n", "--url", "http://h:1", "--user", "u"], "--password-env"),
        (
            ["nodes", "add", "n", "--url", "http://h:1", "--user", "u", "--password-env", "NOPE"],
            "NOPE is not set",
        ),
        (["token", "create", "--name", "x", "--scope", "root"], "--scope"),
    ],
)
def test_bad_input_is_exit_2_and_one_line(
    args: list[str],
    says: str,
    nowhere: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in ("ORCH_API_URL", "ORCH_API_TOKEN"):
        monkeypatch.setenv(name, nowhere[name])
    result = run(args, capsys)
    assert result.code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert says in lines[0]
    assert result.stdout == ""


def test_bad_input_as_a_real_process_is_exit_2_and_one_line(nowhere: dict[str, str]) -> None:
    result = cli("jobs", "submit", "--from", "node-a", "--to", "node-b:in", env=nowhere)
    assert result.code == 2
    assert result.stderr.strip().splitlines() == [
        "error: --from 'node-a': expected NODE:PATH[,PATH...], e.g. node-a:outgoing"
    ]


def test_missing_token_says_how_to_make_one(capsys: pytest.CaptureFixture[str]) -> None:
    result = run(["jobs", "list"], capsys)
    assert result.code == 2
    assert "ORCH_API_TOKEN" in result.stderr and "token create" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["jobs", "list"],
        ["jobs", "watch", "some-id"],
        ["jobs", "submit", "--from", "node-a:outgoing", "--to", "node-b:incoming"],
        ["nodes", "list"],
    ],
)
def test_unreachable_api_is_exit_1_and_says_what_to_check(
    args: list[str],
    nowhere: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in ("ORCH_API_URL", "ORCH_API_TOKEN"):
        monkeypatch.setenv(name, nowhere[name])
    result = run(args, capsys)
    assert result.code == 1, result.output
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: cannot reach the API at {nowhere['ORCH_API_URL']}")
    assert "ORCH_API_URL" in line and "hsts-orchestrator up" in line
    assert "Traceback" not in result.output


def test_unreachable_api_as_a_real_process_is_exit_1(nowhere: dict[str, str]) -> None:
    result = cli("jobs", "list", env=nowhere)
    assert result.code == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: cannot reach the API at {nowhere['ORCH_API_URL']}")


def test_token_create_without_a_database_says_to_upgrade(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ORCH_DATA_DIR", str(tmp_path))
    result = run(["token", "create", "--name", "x"], capsys)
    assert result.code == 1
    assert "hsts-orchestrator db upgrade" in result.stderr
    upgraded = run(["db", "upgrade"], capsys)
    assert upgraded.code == 0, upgraded.output
    created = run(["token", "create", "--name", "x", "--scope", "admin"], capsys)
    assert created.code == 0, created.output
    assert created.stdout.startswith("hso_")


COMMANDS = [
    ["up"], ["api"], ["worker"], ["beat"], ["flower"], ["db", "upgrade"], ["token", "create"],
    ["jobs", "submit"], ["jobs", "list"], ["jobs", "show"], ["jobs", "cancel"],
    ["jobs", "retry"], ["jobs", "watch"], ["nodes", "add"], ["nodes", "list"],
    ["nodes", "check"], ["nodes", "remove"],
]  # fmt: skip


def test_every_command_help_teaches_with_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    for command in COMMANDS:
        result = run([*command, "--help"], capsys)
        assert result.code == 0, (command, result.output)
        assert "Example:" in result.stdout, command
        assert "hsts-orchestrator" in result.stdout.split("Example:", 1)[1], command


def test_an_invalid_setting_is_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ORCH_POLL_INTERVAL", "-1")
    result = run(["db", "upgrade"], capsys)
    assert result.code == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: invalid setting ORCH_POLL_INTERVAL: ")


def test_help_flows_its_paragraphs_and_shows_no_bool_placeholder(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    for command in (["up"], ["nodes", "add"], ["jobs", "list"]):
        result = run([*command, "--help"], capsys)
        assert result.code == 0, result.output
        assert "<bool>" not in result.stdout, command
    # The docstring breaks this sentence after "without"; the help does not.
    assert (
        "loopback port; without ORCH_DATABASE_URL a SQLite file" in run(["up", "-h"], capsys).stdout
    )
