"""``pipeline.config.settings``: settings from keyword arguments, validated as the command line's are."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipeline.config import Settings, resolve_settings, settings
from pipeline.errors import ConfigError

ENDPOINT = "https://swr-api.cn-north-4.myhuaweicloud.com"
TOKEN = "tok-API-SECRET-123456"
GOOD: dict[str, Any] = {"endpoint": ENDPOINT, "project_id": "p1", "token": TOKEN}


def test_good_values_give_frozen_settings(tmp_path: Path) -> None:
    s = settings(
        **GOOD,
        data_dir=tmp_path,
        instance_ids=["i-1", "i-2", "i-1"],
        policy_ids=[3, "4"],
        concurrency=4,
        read_timeout=7.5,
        strict=True,
        upload_every_s=0.5,
    )
    assert isinstance(s, Settings)
    assert (s.endpoint, s.project_id, s.data_dir) == (ENDPOINT, "p1", tmp_path)
    assert (s.instance_ids, s.policy_ids) == (("i-1", "i-2"), (3, 4))
    assert (s.concurrency, s.read_timeout, s.strict, s.upload_every_s) == (4, 7.5, True, 0.5)
    assert s.credentials.kind == "token" and s.credentials.token == TOKEN
    assert TOKEN not in repr(s)


def test_the_same_as_the_command_line_gives() -> None:
    env = {"SWR_ENDPOINT": ENDPOINT, "SWR_PROJECT_ID": "p1", "SWR_AUTH_TOKEN": TOKEN}
    assert settings(**GOOD, workers=2) == resolve_settings({"workers": 2}, env)


@pytest.mark.parametrize(
    ("credentials", "kind"),
    [
        ({"token": TOKEN}, "token"),
        ({"ak": "AK123456", "sk": "SK-secret", "security_token": "st-1"}, "aksk"),
        ({"iam_username": "u", "iam_password": "pw-secret", "iam_domain": "d"}, "iam"),
    ],
)
def test_each_kind_of_credentials(credentials: dict[str, Any], kind: str) -> None:
    s = settings(endpoint=ENDPOINT, project_id="p1", **credentials)
    assert s.credentials.kind == kind
    if kind == "iam":
        assert s.credentials.iam_endpoint == "https://iam.cn-north-4.myhuaweicloud.com"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"endpoint": None}, "no endpoint: give --endpoint or set SWR_ENDPOINT"),
        ({"endpoint": "ftp://x"}, "endpoint 'ftp://x' is not an http(s) URL"),
        ({"project_id": None}, "no project id: give --project-id or set SWR_PROJECT_ID"),
        ({"project_id": "a/b"}, "project_id 'a/b' has characters that are not allowed"),
        ({"instance_ids": ["../etc"]}, "instance id '../etc' has characters that are not allowed"),
        ({"concurrency": "many"}, "--concurrency: expected an integer, got 'many'"),
        ({"concurrency": 0}, "concurrency must be from 1 to 64, got 0"),
        ({"read_timeout": float("nan")}, "--read-timeout must be a finite number above 0, got nan"),
        ({"upload_every_s": 0}, "upload_every_s must be a finite number above 0, got 0"),
        ({"upload_every_s": float("inf")}, "upload_every_s must be a finite number above 0, got inf"),
        ({"upload_every_s": "soon"}, "upload_every_s: expected a number, got 'soon'"),
        ({"max_attempts": 99}, "max_attempts must be from 1 to 20"),
        ({"workers": 17}, "workers must be from 1 to 16, got 17"),
        ({"strict": "maybe"}, "--strict: expected true or false, got 'maybe'"),
        ({"insecure": True, "ca_bundle": "/"}, "--ca-bundle and --insecure contradict each other: give one"),
        ({"token": None}, "no credentials: set SWR_AUTH_TOKEN"),
        ({"token": None, "ak": "AK123456"}, "CLOUD_SDK_AK and CLOUD_SDK_SK must be set together"),
        ({"token": None, "iam_username": "u", "iam_password": "p"}, "IAM password login also needs SWR_IAM_DOMAIN"),
        ({"token": 12345678}, "token: expected a string, got int"),
        ({"token": "tok\nen"}, "SWR_AUTH_TOKEN holds control or non-Latin-1 characters"),
        ({"colour": "blue"}, "unknown setting 'colour'"),
    ],
)
def test_each_kind_of_bad_value_is_a_config_error(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        settings(**{**GOOD, **values})
    assert message in str(info.value)
    assert "12345678" not in str(info.value) and "tok\nen" not in str(info.value)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as info:
        settings(colour="blue", concurrency=0, upload_every_s=-1)
    message = str(info.value)
    for fragment in ("unknown setting 'colour'", "no endpoint", "concurrency must be", "upload_every_s must be"):
        assert fragment in message


def test_the_environment_is_not_read_unless_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWR_ENDPOINT", ENDPOINT)
    monkeypatch.setenv("SWR_PROJECT_ID", "p1")
    monkeypatch.setenv("SWR_AUTH_TOKEN", TOKEN)
    monkeypatch.setenv("SWR_ETL_CONCURRENCY", "many")
    monkeypatch.setenv("SWR_ETL_UPLOAD_EVERY_S", "nope")
    with pytest.raises(ConfigError) as info:
        settings()
    assert "no endpoint" in str(info.value) and "no credentials" in str(info.value)
    assert "SWR_ETL_CONCURRENCY" not in str(info.value)
    assert settings(need_api=False).concurrency == 8


def test_a_given_environment_is_read_and_keywords_beat_it() -> None:
    env = {"SWR_ENDPOINT": ENDPOINT, "SWR_PROJECT_ID": "p1", "SWR_AUTH_TOKEN": TOKEN, "SWR_ETL_UPLOAD_EVERY_S": "5"}
    s = settings(environ=env, project_id="p2")
    assert (s.project_id, s.upload_every_s, s.credentials.kind) == ("p2", 5.0, "token")
    s = settings(environ=env, ak="AK123456", sk="SK-secret")  # the keywords' credentials, not the token
    assert s.credentials.kind == "aksk" and s.credentials.token is None


def test_a_config_file_is_read_only_when_given(tmp_path: Path) -> None:
    config = tmp_path / "swr.toml"
    config.write_text('concurrency = 3\nupload-every-s = 12.5\ninstance-id = ["a"]\n')
    s = settings(**GOOD, config_file=config)
    assert (s.concurrency, s.upload_every_s, s.instance_ids) == (3, 12.5, ("a",))
    assert settings(**GOOD, config_file=str(config), concurrency=5).concurrency == 5
    assert settings(**GOOD).concurrency == 8
    with pytest.raises(ConfigError, match="does not exist"):
        settings(**GOOD, config_file=tmp_path / "absent.toml")


def test_config_file_spellings_are_accepted() -> None:
    s = settings(**GOOD, **{"instance_id": "a,b", "read-timeout": 3})  # type: ignore[arg-type]
    assert (s.instance_ids, s.read_timeout) == (("a", "b"), 3.0)


def test_upload_every_s_from_the_environment_is_validated() -> None:
    env = {"SWR_ENDPOINT": ENDPOINT, "SWR_PROJECT_ID": "p1", "SWR_AUTH_TOKEN": TOKEN}
    assert resolve_settings({}, env).upload_every_s == 30.0
    assert resolve_settings({}, {**env, "SWR_ETL_UPLOAD_EVERY_S": "0.2"}).upload_every_s == 0.2
    for bad, shown in (("0", "0"), ("-3", "-3"), ("nan", "nan"), ("inf", "inf")):
        with pytest.raises(
            ConfigError, match=rf"^SWR_ETL_UPLOAD_EVERY_S must be a finite number above 0, got {shown}$"
        ):
            resolve_settings({}, {**env, "SWR_ETL_UPLOAD_EVERY_S": bad})
    with pytest.raises(ConfigError, match=r"^SWR_ETL_UPLOAD_EVERY_S: expected a number, got 'soon'$"):
        resolve_settings({}, {**env, "SWR_ETL_UPLOAD_EVERY_S": "soon"})
