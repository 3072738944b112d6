"""The alerts file: what it accepts, the errors it names, who hears which end, and reloading."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from orchestrator.domain.alerts import AlertsConfig, job_end_channels, streak_channels
from orchestrator.domain.schedules import ScheduleAlerts
from orchestrator.domain.states import JobState
from orchestrator.errors import ConfigError
from orchestrator.services.alerts.rules import AlertRules, known_channels, load_alerts
from orchestrator.settings import Settings
from tests.support.alerts import write_alerts_file

EXAMPLE = Path(__file__).parents[2] / "config" / "alerts.example.yaml"
HOOK = {"kind": "webhook", "url": "https://hooks.example.com/a"}


def test_the_example_file_loads_and_names_its_channels(tmp_path: Path) -> None:
    config = load_alerts(EXAMPLE)
    assert set(config.channels) == {"ops-webhook", "oncall-mail"}
    assert known_channels(Settings(data_dir=tmp_path, alerts_file=EXAMPLE)) == {
        "ops-webhook",
        "oncall-mail",
    }


def test_no_file_configured_means_no_channels(tmp_path: Path) -> None:
    assert known_channels(Settings(data_dir=tmp_path)) == set()


@pytest.mark.parametrize(
    ("channels", "defaults", "named"),
    [
        ({"ops": HOOK}, {"job_end_channels": ["pager"]}, "defaults.job_end_channels"),
        ({"ops": HOOK}, {"streak_channels": ["pager"]}, "defaults.streak_channels"),
        ({"ops": {**HOOK, "url": "ftp://hooks.example.com"}}, {}, "channels.ops.webhook.url"),
        (
            {"ops": {**HOOK, "url": "https://user:pw@hooks.example.com/"}},
            {},
            "channels.ops.webhook.url",
        ),
        ({"ops": {**HOOK, "secret": "inline"}}, {}, "channels.ops.webhook.secret"),
        ({"ops": {"kind": "email", "to": ["a@b.c\nBcc: x@y.z"]}}, {}, "channels.ops.email.to.0"),
        ({"Ops Hook": HOOK}, {}, "channels.Ops Hook"),
        ({"ops": {"kind": "sms"}}, {}, "channels.ops"),
        ({"ops": HOOK}, {"on_job_end": "sometimes"}, "defaults.on_job_end"),
    ],
)
def test_a_bad_file_is_refused_naming_the_entry(
    tmp_path: Path, channels: dict[str, object], defaults: dict[str, object], named: str
) -> None:
    path = tmp_path / "alerts.yaml"
    write_alerts_file(path, channels, **defaults)
    with pytest.raises(ConfigError) as caught:
        load_alerts(path)
    assert str(path) in str(caught.value)
    assert named in str(caught.value)


def test_a_missing_or_unparsable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"alerts file .*missing\.yaml"):
        load_alerts(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("channels: [unclosed")
    with pytest.raises(ConfigError, match="not YAML"):
        load_alerts(broken)


def test_job_end_channels_join_the_global_rule_and_the_schedules_own() -> None:
    config = AlertsConfig.model_validate(
        {
            "channels": {"ops": HOOK, "team": HOOK},
            "defaults": {"on_job_end": "failure", "job_end_channels": ["ops"]},
        }
    )
    team_always = ScheduleAlerts(channels=["team", "ops"], on_run_end="always")
    assert job_end_channels(config, None, JobState.COMPLETED) == []
    assert job_end_channels(config, None, JobState.FAILED) == ["ops"]
    assert job_end_channels(config, None, JobState.NEEDS_ATTENTION) == ["ops"]
    assert job_end_channels(config, None, JobState.CANCELED) == []
    assert job_end_channels(config, team_always, JobState.COMPLETED) == ["team", "ops"]
    assert job_end_channels(config, team_always, JobState.FAILED) == ["ops", "team"]
    quiet = ScheduleAlerts(channels=["team"])
    assert streak_channels(config, quiet) == ["team"]


def test_a_broken_edit_keeps_the_rules_read_before(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "alerts.yaml"
    write_alerts_file(path, {"ops": HOOK}, on_job_end="always", job_end_channels=["ops"])
    rules = AlertRules(path)
    assert rules.config().defaults.on_job_end == "always"

    write_alerts_file(path, {"ops": HOOK}, on_job_end="always", job_end_channels=["gone"])
    with caplog.at_level(logging.ERROR):
        assert rules.config().defaults.job_end_channels == ["ops"]
    assert "keeping the alert rules read before" in caplog.text

    write_alerts_file(path, {"ops": HOOK, "team": HOOK}, job_end_channels=["team"])
    assert rules.config().defaults.job_end_channels == ["team"]
