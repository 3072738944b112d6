"""A Sentinel broker URL: how it is read, what Celery is told, and that no password leaks."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from orchestrator.broker import sentinel_list, transport_options
from orchestrator.cli.redis_server import describe_broker
from orchestrator.errors import ConfigError
from orchestrator.logsetup import SECRETS, redact, register_url_password
from orchestrator.settings import Settings

LIST = "sentinel://:first%40pass-1@s1:26380/2;sentinel://s2;sentinel://:second-pass-2@s3:26381"


def test_a_sentinel_list_names_every_sentinel_and_the_masters_login_from_the_first() -> None:
    found = sentinel_list(LIST)
    assert found.nodes == (("s1", 26380), ("s2", 26379), ("s3", 26381))
    assert (found.username, found.password, found.db) == (None, "first@pass-1", 2)


@pytest.mark.parametrize(
    "url",
    [
        "sentinel://:secret-pw@s1:26379;redis://:secret-pw@s2:6379",
        "sentinel://:secret-pw@s1:26379/x",
        "sentinel://:secret-pw@s1:notaport",
        "sentinel://:secret-pw@:26379",
    ],
)
def test_a_malformed_list_is_refused_without_quoting_it(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        sentinel_list(url)
    assert "secret-pw" not in str(caught.value)


def test_celery_is_told_the_master_name_and_the_sentinels_login_only_for_a_list() -> None:
    plain = Settings(redis_url="redis://:pw@h:6379/0")
    assert transport_options(plain) == {}
    sentinel = Settings(
        redis_url=LIST,
        redis_sentinel_master="orch",
        redis_sentinel_password=SecretStr("sentinel-pw"),
    )
    options = transport_options(sentinel)
    assert options["master_name"] == "orch"
    assert options["sentinel_kwargs"]["password"] == "sentinel-pw"
    assert options["sentinel_kwargs"]["socket_timeout"] > 0


def test_every_password_of_a_list_is_masked_for_people_and_in_logs() -> None:
    assert (
        describe_broker(LIST) == "sentinel://:***@s1:26380/2;sentinel://s2;sentinel://:***@s3:26381"
    )
    try:
        register_url_password(LIST)
        line = redact("tried first@pass-1 then second-pass-2")
        assert "first@pass-1" not in line and "second-pass-2" not in line
    finally:
        SECRETS.clear()
