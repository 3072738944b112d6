"""Settings: defaults, validation with a clear message, and the example file stays complete."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from orchestrator.settings import Settings

EXAMPLE = Path(__file__).parents[2] / "config" / "settings.example.env"


def test_every_setting_is_documented_in_the_example_file() -> None:
    documented = set(re.findall(r"^#?(ORCH_[A-Z_]+)=", EXAMPLE.read_text(), re.M))
    expected = {f"ORCH_{name.upper()}" for name in Settings.model_fields}
    assert documented == expected


def test_every_setting_has_a_description() -> None:
    assert [n for n, f in Settings.model_fields.items() if not f.description] == []


def test_environment_is_read_with_the_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_POLL_INTERVAL", "0.5")
    assert Settings().poll_interval == 0.5


def test_a_lease_shorter_than_a_node_call_is_refused() -> None:
    with pytest.raises(ValidationError, match="ORCH_POST_SETTLE_SECONDS"):
        Settings(post_settle_seconds=10, node_read_timeout=30)


def test_default_database_is_a_sqlite_file_in_the_data_dir(tmp_path: Path) -> None:
    url = Settings(data_dir=tmp_path).effective_database_url()
    assert url == f"sqlite:///{tmp_path / 'orchestrator.db'}"
