"""How REDIS_URL / REDIS_SENTINELS are read (app/store/connection.py): what a user writes, what Sluice
makes of it, the clear error for a mistake, and that a password is never part of what is shown."""

from __future__ import annotations

import pytest

from app.config_file.loader import ConfigError
from app.context import redis_url
from app.store.connection import (
    DEFAULT_REDIS_URL,
    RedisUrlError,
    SentinelTarget,
    parse_sentinel_url,
    redis_url_from_env,
    shown,
)


def test_a_sentinel_url_names_the_sentinels_the_master_and_the_database() -> None:
    target = parse_sentinel_url("redis+sentinel://:pa%3Ass@h1:26379,h2:26380,10.0.0.3/mymaster/2", env={})
    assert target == SentinelTarget(
        sentinels=(("h1", 26379), ("h2", 26380), ("10.0.0.3", 26379)), master="mymaster", db=2, password="pa:ss"
    )
    assert parse_sentinel_url("redis+sentinel://h1/mymaster", env={}).db == 0
    with_user = parse_sentinel_url("rediss+sentinel://sluice:pw@[::1]:26379/m/0", env={"REDIS_SENTINEL_PASSWORD": "sp"})
    assert with_user.sentinels == (("::1", 26379),) and with_user.username == "sluice" and with_user.ssl
    assert with_user.sentinel_password == "sp"


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis+sentinel:///mymaster/0", "no sentinel host"),
        ("redis+sentinel://h1:26379", "/<master name>"),
        ("redis+sentinel://h1:26379/m/0/extra", "/<master name>"),
        ("redis+sentinel://h1:notaport/m", "not a port number"),
        ("redis+sentinel://h1:70000/m", "not a port number"),
        ("redis+sentinel://h_1;rm -rf:26379/m", "not a host name"),
        ("redis+sentinel://h1/m/zero", "not a number"),
        ("redis+sentinel://h1/m%20x/0", "master name"),
    ],
)
def test_a_bad_sentinel_url_is_refused_with_what_to_write(url: str, says: str) -> None:
    with pytest.raises(RedisUrlError, match="") as caught:
        parse_sentinel_url(url, env={})
    assert says in str(caught.value)


def test_the_env_form_builds_the_same_target_and_keeps_the_password_out_of_the_url() -> None:
    env = {"REDIS_SENTINELS": "h1:26379, h2:26379", "REDIS_SENTINEL_MASTER": "mymaster", "REDIS_PASSWORD": "pw"}
    url = redis_url_from_env(env)
    assert url == "redis+sentinel://h1:26379,h2:26379/mymaster/0" and "pw" not in url
    assert parse_sentinel_url(url, env).sentinels == (("h1", 26379), ("h2", 26379))
    assert redis_url_from_env({}) == DEFAULT_REDIS_URL
    assert redis_url_from_env({"REDIS_URL": "redis://r:6379/1"}) == "redis://r:6379/1"


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"REDIS_SENTINELS": "h1:26379"}, "without REDIS_SENTINEL_MASTER"),
        ({"REDIS_SENTINELS": "h1:26379", "REDIS_SENTINEL_MASTER": "m", "REDIS_URL": "redis://x"}, "set one"),
        ({"REDIS_SENTINELS": "h1:x", "REDIS_SENTINEL_MASTER": "m"}, "not a port number"),
        ({"REDIS_SENTINELS": "h1", "REDIS_SENTINEL_MASTER": "m m"}, "REDIS_SENTINEL_MASTER"),
        ({"REDIS_URL": "redis+sentinel://h1/"}, "/<master name>"),
    ],
)
def test_a_bad_environment_is_a_configuration_error_at_start(
    env: dict[str, str], says: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("REDIS_URL", "REDIS_SENTINELS", "REDIS_SENTINEL_MASTER", "REDIS_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        redis_url()
    assert says in caught.value.render()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis+sentinel://:hunter2@h1:26379,h2:26379/m/0", "redis+sentinel://:***@h1:26379,h2:26379/m/0"),
        ("redis+sentinel://me:hunter2@h1/m", "redis+sentinel://me:***@h1:26379/m/0"),
        ("redis+sentinel://h1:26379/m/0", "redis+sentinel://h1:26379/m/0"),
        ("redis+sentinel://:hunter2@h1:bad/m", "redis+sentinel://(unparsable URL, not shown)"),
        ("redis://:hunter2@r:6379/0", "redis://r:6379/0"),
        ("redis://default:hunter2@r/0", "redis://r/0"),
        ("unix:///run/redis.sock", "unix:///run/redis.sock"),
    ],
)
def test_what_is_shown_never_holds_the_password(url: str, expected: str) -> None:
    assert shown(url) == expected
    assert "hunter2" not in shown(url)
