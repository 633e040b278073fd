"""Settings: precedence, validation, credentials, and secrets kept out of reprs."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import Credentials, resolve_settings
from pipeline.errors import ConfigError

BASE_ENV = {"SWR_ENDPOINT": "https://swr-api.cn-north-4.myhuaweicloud.com", "SWR_PROJECT_ID": "p1"}


def test_flag_beats_environment_beats_file_beats_default(tmp_path: Path) -> None:
    config = tmp_path / "swr.toml"
    config.write_text('concurrency = 3\nread-timeout = 7.5\ndata-dir = "/from/file"\ninstance-id = ["a", "b"]\n')
    env = {**BASE_ENV, "SWR_AUTH_TOKEN": "tok-123456", "SWR_ETL_CONCURRENCY": "5"}
    s = resolve_settings({"concurrency": None, "data_dir": Path("/from/flag")}, env, config)
    assert s.concurrency == 5  # environment over file
    assert s.data_dir == Path("/from/flag")  # flag over everything
    assert s.read_timeout == 7.5  # file over default
    assert s.instance_ids == ("a", "b")
    assert s.connect_timeout == 10.0  # default
    s = resolve_settings({"concurrency": 2}, env, config)
    assert s.concurrency == 2


def test_instance_ids_from_environment_are_comma_separated() -> None:
    env = {**BASE_ENV, "SWR_AUTH_TOKEN": "tok-123456", "SWR_INSTANCE_ID": " i-1, i-2 ,,i-1"}
    assert resolve_settings({}, env).instance_ids == ("i-1", "i-2")


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    config = tmp_path / "swr.toml"
    config.write_text('concurrency = "many"\nsk = "nope"\ncolour = "blue"\n')
    with pytest.raises(ConfigError) as info:
        resolve_settings({"instance_ids": ("../etc",)}, {}, config)
    message = str(info.value)
    for fragment in (
        "config file: 'sk' is a secret; set it in the environment instead",
        "config file: unknown key 'colour'",
        "config file key 'concurrency': expected an integer, got 'many'",
        "no endpoint: give --endpoint or set SWR_ENDPOINT",
        "no project id: give --project-id or set SWR_PROJECT_ID",
        "instance id '../etc' has characters that are not allowed",
        "no credentials: set SWR_AUTH_TOKEN",
    ):
        assert fragment in message
    assert "nope" not in message


def test_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_settings({}, BASE_ENV, tmp_path / "absent.toml")


@pytest.mark.parametrize("concurrency", [0, 65])
def test_concurrency_is_bounded(concurrency: int) -> None:
    with pytest.raises(ConfigError, match="concurrency must be from 1 to 64"):
        resolve_settings({"concurrency": concurrency}, {**BASE_ENV, "SWR_AUTH_TOKEN": "tok-123456"})


def test_endpoint_must_be_http() -> None:
    with pytest.raises(ConfigError, match="is not an http"):
        resolve_settings({"endpoint": "ftp://x"}, {**BASE_ENV, "SWR_AUTH_TOKEN": "tok-123456"})


def test_token_wins_then_aksk_then_iam() -> None:
    everything = {
        "SWR_AUTH_TOKEN": "tok-123456",
        "CLOUD_SDK_AK": "AK123456",
        "CLOUD_SDK_SK": "SK-secret",
        "SWR_IAM_USERNAME": "u",
        "SWR_IAM_PASSWORD": "pw-secret",
        "SWR_IAM_DOMAIN": "d",
    }
    assert Credentials.from_env(everything).kind == "token"
    del everything["SWR_AUTH_TOKEN"]
    assert Credentials.from_env(everything).kind == "aksk"
    del everything["CLOUD_SDK_AK"], everything["CLOUD_SDK_SK"]
    creds = Credentials.from_env(everything, "https://swr-api.ap-southeast-1.myhuaweicloud.com")
    assert creds.kind == "iam"
    assert creds.iam_endpoint == "https://iam.ap-southeast-1.myhuaweicloud.com"


def test_half_credentials_are_refused() -> None:
    with pytest.raises(ConfigError, match="CLOUD_SDK_AK and CLOUD_SDK_SK must be set together"):
        Credentials.from_env({"CLOUD_SDK_AK": "AK123456"})
    with pytest.raises(ConfigError, match="IAM password login also needs SWR_IAM_DOMAIN"):
        Credentials.from_env({"SWR_IAM_USERNAME": "u", "SWR_IAM_PASSWORD": "p"})
    with pytest.raises(ConfigError, match="set SWR_IAM_ENDPOINT"):
        Credentials.from_env({"SWR_IAM_USERNAME": "u", "SWR_IAM_PASSWORD": "p", "SWR_IAM_DOMAIN": "d"}, "http://x")


def test_reprs_show_no_secret() -> None:
    env = {
        **BASE_ENV,
        "CLOUD_SDK_AK": "AKVISIBLE99",
        "CLOUD_SDK_SK": "SK-very-secret",
        "CLOUD_SDK_SECURITY_TOKEN": "st-x1",
    }
    s = resolve_settings({}, env)
    text = repr(s)
    for secret in ("AKVISIBLE99", "SK-very-secret", "st-x1"):
        assert secret not in text
    assert s.credentials.secrets() == ["AKVISIBLE99", "SK-very-secret", "st-x1"]


def test_workers_come_from_the_environment_and_are_checked() -> None:
    env = {**BASE_ENV, "SWR_AUTH_TOKEN": "tok-123456"}
    assert resolve_settings({}, env).workers is None  # the load picks a lane per core
    assert resolve_settings({}, {**env, "SWR_ETL_WORKERS": "3"}).workers == 3
    assert resolve_settings({"workers": 1}, {**env, "SWR_ETL_WORKERS": "3"}).workers == 1
    with pytest.raises(ConfigError, match="workers must be from 1 to 16, got 0"):
        resolve_settings({}, {**env, "SWR_ETL_WORKERS": "0"})


@pytest.mark.parametrize(
    "line", ["read-timeout = nan", "connect-timeout = inf", "request-deadline = -inf", "max-response-mb = 0"]
)
def test_timeouts_and_limits_must_be_finite_numbers_above_zero(tmp_path: Path, line: str) -> None:
    config = tmp_path / "swr.toml"
    config.write_text(line + "\n")
    key = line.split(" = ")[0].replace("-", "_")
    with pytest.raises(ConfigError, match=rf"^config file key '{key}' must be a finite number above 0, got "):
        resolve_settings({}, {**BASE_ENV, "SWR_AUTH_TOKEN": "tok-123456"}, config)


def test_the_request_deadline_and_the_response_limit_have_defaults_and_sources() -> None:
    env = {**BASE_ENV, "SWR_AUTH_TOKEN": "tok-123456"}
    s = resolve_settings({}, env)
    assert (s.request_deadline, s.max_response_mb) == (300.0, 64.0)
    env |= {"SWR_ETL_REQUEST_DEADLINE": "9", "SWR_ETL_MAX_RESPONSE_MB": "8"}
    s = resolve_settings({"request_deadline": 5.0}, env)
    assert (s.request_deadline, s.max_response_mb) == (5.0, 8.0)


def test_the_request_budget_is_off_by_default_and_comes_from_flag_environment_or_file(tmp_path: Path) -> None:
    env = {**BASE_ENV, "SWR_AUTH_TOKEN": "tok-123456"}
    assert resolve_settings({}, env).max_rps == 0.0  # no budget
    config = tmp_path / "swr.toml"
    config.write_text("max-rps = 20\n")
    assert resolve_settings({}, env, config).max_rps == 20.0
    assert resolve_settings({}, {**env, "SWR_ETL_MAX_RPS": "12.5"}, config).max_rps == 12.5
    assert resolve_settings({"max_rps": 3.0}, {**env, "SWR_ETL_MAX_RPS": "12.5"}, config).max_rps == 3.0
    assert resolve_settings({}, {**env, "SWR_ETL_MAX_RPS": "0"}).max_rps == 0.0  # 0 says "no budget" explicitly


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("abc", "SWR_ETL_MAX_RPS: expected a number, got 'abc'"),
        ("-1", "SWR_ETL_MAX_RPS must be a finite number of requests per second, or 0 for no budget, got -1"),
        ("nan", "SWR_ETL_MAX_RPS must be a finite number of requests per second, or 0 for no budget, got nan"),
        ("inf", "SWR_ETL_MAX_RPS must be a finite number of requests per second, or 0 for no budget, got inf"),
    ],
)
def test_a_request_budget_that_is_not_a_finite_number_of_zero_or_more_is_refused(value: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_settings({}, {**BASE_ENV, "SWR_AUTH_TOKEN": "tok-123456", "SWR_ETL_MAX_RPS": value})
    assert str(info.value) == problem


def test_a_bad_request_budget_is_named_by_where_it_came_from(tmp_path: Path) -> None:
    env = {**BASE_ENV, "SWR_AUTH_TOKEN": "tok-123456"}
    with pytest.raises(ConfigError, match=r"^--max-rps must be a finite number .* got -inf$"):
        resolve_settings({"max_rps": float("-inf")}, env)
    config = tmp_path / "swr.toml"
    config.write_text("max-rps = nan\n")
    with pytest.raises(ConfigError, match=r"^config file key 'max_rps' must be a finite number .* got nan$"):
        resolve_settings({}, env, config)
