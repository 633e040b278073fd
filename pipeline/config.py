"""Settings and credentials: resolved once, frozen, passed down. Nothing here touches the network.

A setting comes from the command-line flag, else the environment, else the TOML config file, else the
default (:func:`resolve_settings`); the Python API gives keyword arguments instead of flags (:func:`settings`).
Secrets come only from the environment or those keyword arguments, never from a flag or the config file, and
no secret ever appears in a ``repr``. Every problem found is reported at once, in one :class:`ConfigError`.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pipeline.errors import ConfigError

DEFAULT_CONCURRENCY = 8
MAX_CONCURRENCY = 64
MAX_WORKERS = 16  # lanes of a load: each holds a batch and its own DuckDB memory
# Far above any real page (100 tasks of a few KiB each), far below what a decompression bomb would cost.
DEFAULT_MAX_RESPONSE_MB = 64.0
DEFAULT_REQUEST_DEADLINE_S = 300.0
DEFAULT_UPLOAD_EVERY_S = 30.0
# No request budget unless asked for: SWR publishes no quota to base one on, and the 429 reaction already
# backs off (docs/decisions/0019-request-budget.md). 20 is the documented value for a shared account.
DEFAULT_MAX_RPS = 0.0
# settings that are a size or a duration: a finite number above 0, or the client cannot honour them
POSITIVE_NUMBERS = (
    "connect_timeout",
    "read_timeout",
    "request_deadline",
    "max_response_mb",
    "upload_every_s",
    "max_success_age_hours",
    "stuck_hours",
)
SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

SECRET_ENV = (
    "SWR_AUTH_TOKEN",
    "CLOUD_SDK_AK",
    "CLOUD_SDK_SK",
    "CLOUD_SDK_SECURITY_TOKEN",
    "SWR_IAM_PASSWORD",
    # an S3 lake's credentials (pipeline.load.storage): read by pyarrow from the environment, masked like ours
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
)
# the keyword arguments of Settings.build that are credentials -> the variable Credentials.from_env reads
CREDENTIAL_ENV = {
    "token": "SWR_AUTH_TOKEN",
    "ak": "CLOUD_SDK_AK",
    "sk": "CLOUD_SDK_SK",
    "security_token": "CLOUD_SDK_SECURITY_TOKEN",
    "iam_username": "SWR_IAM_USERNAME",
    "iam_password": "SWR_IAM_PASSWORD",
    "iam_domain": "SWR_IAM_DOMAIN",
    "iam_endpoint": "SWR_IAM_ENDPOINT",
}


@dataclass(frozen=True)
class Credentials:
    """How requests are authenticated. Built from the environment only; ``repr`` shows no secret."""

    kind: Literal["token", "aksk", "iam"]
    token: str | None = field(default=None, repr=False)
    ak: str | None = field(default=None, repr=False)
    sk: str | None = field(default=None, repr=False)
    security_token: str | None = field(default=None, repr=False)
    iam_username: str | None = None
    iam_password: str | None = field(default=None, repr=False)
    iam_domain: str | None = None
    iam_endpoint: str | None = None

    def secrets(self) -> list[str]:
        """Every secret value held, for redaction."""
        values = (self.token, self.ak, self.sk, self.security_token, self.iam_password)
        return [v for v in values if v]

    @classmethod
    def from_env(cls, environ: Mapping[str, str], endpoint: str | None = None) -> Credentials:
        """Token wins, then AK/SK, then IAM user and password. Raises :class:`ConfigError` when none is set."""
        env = {k: v.strip() for k, v in environ.items() if v and v.strip()}
        for name in ("SWR_AUTH_TOKEN", "CLOUD_SDK_AK", "CLOUD_SDK_SECURITY_TOKEN"):  # sent as header values
            if name in env and not _header_safe(env[name]):
                # the value is never repeated: it may be a secret
                raise ConfigError(f"{name} holds control or non-Latin-1 characters, which no HTTP header can carry")
        if "SWR_AUTH_TOKEN" in env:
            return cls("token", token=env["SWR_AUTH_TOKEN"])
        if "CLOUD_SDK_AK" in env or "CLOUD_SDK_SK" in env:
            if not ("CLOUD_SDK_AK" in env and "CLOUD_SDK_SK" in env):
                raise ConfigError("CLOUD_SDK_AK and CLOUD_SDK_SK must be set together")
            return cls(
                "aksk",
                ak=env["CLOUD_SDK_AK"],
                sk=env["CLOUD_SDK_SK"],
                security_token=env.get("CLOUD_SDK_SECURITY_TOKEN"),
            )
        iam = [k for k in ("SWR_IAM_USERNAME", "SWR_IAM_PASSWORD", "SWR_IAM_DOMAIN") if k in env]
        if iam:
            missing = sorted({"SWR_IAM_USERNAME", "SWR_IAM_PASSWORD", "SWR_IAM_DOMAIN"} - set(iam))
            if missing:
                raise ConfigError(f"IAM password login also needs {', '.join(missing)}")
            iam_endpoint = env.get("SWR_IAM_ENDPOINT") or _iam_endpoint_for(endpoint)
            if not iam_endpoint:
                raise ConfigError("set SWR_IAM_ENDPOINT: it cannot be derived from the SWR endpoint")
            return cls(
                "iam",
                iam_username=env["SWR_IAM_USERNAME"],
                iam_password=env["SWR_IAM_PASSWORD"],
                iam_domain=env["SWR_IAM_DOMAIN"],
                iam_endpoint=iam_endpoint.rstrip("/"),
            )
        raise ConfigError(
            "no credentials: set SWR_AUTH_TOKEN, or CLOUD_SDK_AK and CLOUD_SDK_SK, "
            "or SWR_IAM_USERNAME, SWR_IAM_PASSWORD and SWR_IAM_DOMAIN"
        )


def _header_safe(value: str) -> bool:
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return not any(ord(c) < 32 or ord(c) == 127 for c in value)


def _iam_endpoint_for(endpoint: str | None) -> str | None:
    """``https://swr-api.cn-north-4.myhuaweicloud.com`` -> ``https://iam.cn-north-4.myhuaweicloud.com``."""
    if not endpoint:
        return None
    parts = urlsplit(endpoint)
    host = parts.hostname or ""
    match = re.fullmatch(r"swr-api\.([a-z0-9-]+)\.(myhuaweicloud\.[a-z.]+)", host)
    if not match:
        return None
    return f"{parts.scheme}://iam.{match.group(1)}.{match.group(2)}"


@dataclass(frozen=True)
class Settings:
    """Everything a run needs, resolved and validated. Secrets live in ``credentials`` only."""

    endpoint: str
    project_id: str
    credentials: Credentials
    data_dir: Path = Path("data")  # local: the given folder, or the work folder of a remote data directory
    lake: str | None = None  # where the lake is: a path or s3://bucket/prefix (default: DATA_DIR/lake)
    remote: str | None = None  # a data directory on object storage (s3://bucket/prefix): pipeline.extraction.mirror
    work_dir: Path | None = None  # the local folder of a remote data directory (default: ~/.cache/swr-etl/...)
    instance_ids: tuple[str, ...] = ()
    policy_ids: tuple[int, ...] = ()
    execution_ids: tuple[int, ...] = ()
    concurrency: int = DEFAULT_CONCURRENCY
    connect_timeout: float = 10.0
    read_timeout: float = 60.0  # idle: the longest wait for the next bytes
    request_deadline: float = DEFAULT_REQUEST_DEADLINE_S  # total: connect, headers and the whole body, per attempt
    max_response_mb: float = DEFAULT_MAX_RESPONSE_MB  # MiB of body, as sent and once decompressed
    max_attempts: int = 6
    strict: bool = False
    full: bool = False  # fetch finished executions again, even those already landed
    # whose per-tag subtasks to fetch: "failed" (tasks that ended without succeeding), "all" or "none"
    subtasks: str = "failed"
    ca_bundle: Path | None = None  # CA certificates to verify the endpoint with (a private CA)
    insecure: bool = False  # no TLS verification at all: loud, and only when asked for
    workers: int | None = None  # lanes that transform side by side (default: one per core, at most 4)
    # seconds between uploads of an extract's complete fetches to a data directory in a store
    upload_every_s: float = DEFAULT_UPLOAD_EVERY_S
    # requests per second at most, across every thread of the run (pipeline.api.ratelimit); 0: no budget
    max_rps: float = DEFAULT_MAX_RPS
    # the thresholds of swr-etl check (pipeline.report.check, sql/alerts_over.sql)
    max_failure_rate: float = 0.1
    max_success_age_hours: float = 26.0
    stuck_hours: float = 6.0
    max_missing_tags: int = 0
    max_missed_runs: int = 1
    # Prometheus: the text file written after each run and by swr-etl metrics (node_exporter's textfile
    # collector), and a Pushgateway to push the same metrics to (pipeline.report.metrics)
    metrics_file: Path | None = None
    pushgateway: str | None = None


SUBTASK_MODES = ("failed", "all", "none")  # --subtasks: whose per-tag subtasks the extract fetches

# name -> (flag, environment variable, kind). Kinds: str, int, float, ids (str list), ints, path, bool.
# A setting without a flag is named by its name in messages about a value given as a keyword.
FIELDS: dict[str, tuple[str | None, str | None, str]] = {
    "endpoint": ("--endpoint", "SWR_ENDPOINT", "str"),
    "project_id": ("--project-id", "SWR_PROJECT_ID", "str"),
    "instance_ids": ("--instance-id", "SWR_INSTANCE_ID", "ids"),
    "policy_ids": ("--policy-id", None, "ints"),
    "execution_ids": ("--execution-id", None, "ints"),
    "data_dir": ("--data-dir", "SWR_ETL_DATA_DIR", "path"),
    "lake": ("--lake", "SWR_ETL_LAKE", "str"),
    "work_dir": ("--work-dir", "SWR_ETL_WORK_DIR", "path"),
    "concurrency": ("--concurrency", "SWR_ETL_CONCURRENCY", "int"),
    "connect_timeout": ("--connect-timeout", "SWR_ETL_CONNECT_TIMEOUT", "float"),
    "read_timeout": ("--read-timeout", "SWR_ETL_READ_TIMEOUT", "float"),
    "request_deadline": ("--request-deadline", "SWR_ETL_REQUEST_DEADLINE", "float"),
    "max_response_mb": ("--max-response-mb", "SWR_ETL_MAX_RESPONSE_MB", "float"),
    "max_attempts": ("--max-attempts", "SWR_ETL_MAX_ATTEMPTS", "int"),
    "max_rps": ("--max-rps", "SWR_ETL_MAX_RPS", "float"),
    "strict": ("--strict", None, "bool"),
    "full": ("--full", None, "bool"),
    "subtasks": ("--subtasks", "SWR_ETL_SUBTASKS", "str"),
    "ca_bundle": ("--ca-bundle", "SWR_ETL_CA_BUNDLE", "path"),
    "insecure": ("--insecure", None, "bool"),
    "workers": ("--workers", "SWR_ETL_WORKERS", "int"),
    "upload_every_s": (None, "SWR_ETL_UPLOAD_EVERY_S", "float"),
    "max_failure_rate": ("--max-failure-rate", "SWR_ETL_MAX_FAILURE_RATE", "float"),
    "max_success_age_hours": ("--max-success-age-hours", "SWR_ETL_MAX_SUCCESS_AGE_HOURS", "float"),
    "stuck_hours": ("--stuck-hours", "SWR_ETL_STUCK_HOURS", "float"),
    "max_missing_tags": ("--max-missing-tags", "SWR_ETL_MAX_MISSING_TAGS", "int"),
    "max_missed_runs": ("--max-missed-runs", "SWR_ETL_MAX_MISSED_RUNS", "int"),
    "metrics_file": ("--metrics-file", "SWR_ETL_METRICS_FILE", "path"),
    "pushgateway": ("--pushgateway", "SWR_ETL_PUSHGATEWAY", "str"),
}
# Config-file keys also accepted with dashes, as the flags spell them.
FILE_ALIASES = {"instance_id": "instance_ids", "policy_id": "policy_ids", "execution_id": "execution_ids"}


def load_config_file(path: Path | None) -> dict[str, Any]:
    """Read the TOML config file (flat keys, or under a ``[swr-etl]`` table). ``None`` gives ``{}``."""
    if path is None:
        return {}
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} does not exist") from exc
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"config file {path} could not be read: {exc}") from exc
    table = data.get("swr-etl", data)
    if not isinstance(table, dict):
        raise ConfigError(f"config file {path}: [swr-etl] must be a table")
    return {str(k).replace("-", "_"): v for k, v in table.items()}


def resolve_settings(
    flags: Mapping[str, Any],
    environ: Mapping[str, str] | None = None,
    config_file: Path | None = None,
    *,
    need_api: bool = True,
) -> Settings:
    """Merge flag > environment > config file > default, validate, and return frozen :class:`Settings`.

    ``flags`` holds the command-line values, ``None`` (or an empty tuple) where the flag was not given.
    All problems are collected and raised together. :func:`settings` is the same from keyword arguments.
    """
    environ = os.environ if environ is None else environ
    return _resolve(flags, environ, config_file, need_api=need_api, credentials_env=environ, problems=[])


def settings(
    *,
    environ: Mapping[str, str] | None = None,
    config_file: Path | str | None = None,
    need_api: bool = True,
    **values: Any,
) -> Settings:
    """Settings from keyword arguments, validated as the command line's are: the Python API's way in.

    ``values`` takes the names of the config file and the flags (``endpoint``, ``project_id``,
    ``data_dir``, ``lake``, ``instance_ids``, ``concurrency``, ``upload_every_s``, ...: see
    :data:`FIELDS`; dashes and the singular ``instance_id``, ``policy_id``, ``execution_id`` are accepted
    as in the config file) and the credentials: ``token``; or ``ak``, ``sk`` and optionally
    ``security_token``; or ``iam_username``, ``iam_password``, ``iam_domain`` and optionally
    ``iam_endpoint``. A value of ``None`` counts as not given.

    Neither the environment nor a config file is read unless given: ``environ=os.environ`` reads the
    variables a command reads (settings, credentials, and the ``AWS_*`` of an ``s3://`` lake),
    ``config_file`` the TOML file. A keyword beats ``environ``, which beats the file, which beats the
    default. The credentials come from the keywords when any is given, else from ``environ``.
    ``need_api=False`` is for work that calls no API: no endpoint, project or credentials are needed.

    Raises :class:`ConfigError` naming every problem at once, in the command line's words.
    """
    environ = {} if environ is None else environ
    problems: list[str] = []
    flags: dict[str, Any] = {}
    credentials: dict[str, str] = {}
    for key, value in values.items():
        name = key.replace("-", "_")
        name = FILE_ALIASES.get(name, name)
        if name in CREDENTIAL_ENV:
            if isinstance(value, str):
                credentials[CREDENTIAL_ENV[name]] = value
            elif value is not None:  # the value itself is never repeated: it may be a secret
                problems.append(f"{name}: expected a string, got {type(value).__name__}")
        elif name in FIELDS:
            flags[name] = value
        else:
            problems.append(f"unknown setting '{key}'")
    credentials_env = environ
    if credentials:  # the keywords' credentials only: none of the environment's mixed in
        kept = {k: v for k, v in environ.items() if k not in CREDENTIAL_ENV.values()}
        credentials_env = kept | credentials
    return _resolve(
        flags,
        environ,
        None if config_file is None else Path(config_file),
        need_api=need_api,
        credentials_env=credentials_env,
        problems=problems,
    )


def _resolve(
    flags: Mapping[str, Any],
    environ: Mapping[str, str],
    config_file: Path | None,
    *,
    need_api: bool,
    credentials_env: Mapping[str, str],
    problems: list[str],
) -> Settings:
    """:func:`resolve_settings`, with the credentials read from ``credentials_env`` and ``problems`` found
    already by the caller reported with the rest."""
    file_values = load_config_file(config_file)
    for key in list(file_values):
        if key.upper() in SECRET_ENV or key in {"token", "ak", "sk", "password", "iam_password"}:
            problems.append(f"config file: '{key}' is a secret; set it in the environment instead")
            del file_values[key]
        elif key in FILE_ALIASES:
            file_values[FILE_ALIASES[key]] = file_values.pop(key)
    for key in sorted(set(file_values) - set(FIELDS)):
        problems.append(f"config file: unknown key '{key}'")

    values: dict[str, Any] = {}
    sources: dict[str, str] = {}  # where each value came from, to name it in a problem
    for name, (flag, env_name, kind) in FIELDS.items():
        raw: Any = flags.get(name)
        source = flag or name
        if raw in (None, ()) and env_name and environ.get(env_name, "").strip():
            raw, source = environ[env_name], env_name
        if raw in (None, ()) and name in file_values:
            raw, source = file_values[name], f"config file key '{name}'"
        if raw in (None, ()):
            continue
        try:
            values[name] = _convert(raw, kind)
            sources[name] = source
        except (TypeError, ValueError) as exc:
            problems.append(f"{source}: {exc}")

    endpoint = values.get("endpoint")
    if need_api:
        if not endpoint:
            problems.append("no endpoint: give --endpoint or set SWR_ENDPOINT")
        elif urlsplit(endpoint).scheme not in ("http", "https") or not urlsplit(endpoint).netloc:
            problems.append(f"endpoint {endpoint!r} is not an http(s) URL")
        if not values.get("project_id"):
            problems.append("no project id: give --project-id or set SWR_PROJECT_ID")
    for name in ("project_id",):
        if values.get(name) and not SAFE_ID.match(values[name]):
            problems.append(f"{name} {values[name]!r} has characters that are not allowed")
    for iid in values.get("instance_ids", ()):
        if not SAFE_ID.match(iid):
            problems.append(f"instance id {iid!r} has characters that are not allowed")
    data_dir = str(values.get("data_dir", ""))
    if re.fullmatch(r"[a-zA-Z][a-zA-Z0-9+.-]+:", data_dir):  # "s3://" became "s3:"
        problems.append(f"--data-dir {data_dir}// names no bucket: s3://bucket/prefix")
    elif re.match(r"[a-zA-Z][a-zA-Z0-9+.-]+:/", data_dir):  # a URL (Path made its :// into :/)
        remote = re.sub(r"^([a-zA-Z0-9+.-]+):/+", r"\1://", data_dir).rstrip("/")
        from pipeline.load.storage import is_remote, open_store

        if not is_remote(remote):
            shown = urlsplit(remote)._replace(netloc=urlsplit(remote).hostname or "", query="").geturl()
            problems.append(f"--data-dir {shown}: a data directory is a local folder or s3://bucket/prefix")
        else:
            try:
                open_store(remote, dict(environ))
                values["remote"] = remote
                values["data_dir"] = values.get("work_dir") or default_work_dir(remote, environ)
                values.setdefault("lake", remote + "/lake")
            except ConfigError as exc:
                problems.append(str(exc))
    elif values.get("work_dir"):
        problems.append("--work-dir is the local folder of a data directory in a store: give --data-dir s3://...")
    local = values.get("data_dir")
    if local is not None and "?" in str(local):  # DuckDB reads what follows '?' in a database path as options
        problems.append(
            f"the data directory {str(local)!r} has a '?' in its path, where DuckDB cannot keep its "
            "warehouse: choose a folder without one"
        )
    if values.get("lake"):
        from pipeline.load.storage import open_store

        try:
            open_store(values["lake"], dict(environ))
        except ConfigError as exc:
            problems.append(str(exc))
    concurrency = values.get("concurrency", DEFAULT_CONCURRENCY)
    if not 1 <= concurrency <= MAX_CONCURRENCY:
        problems.append(f"concurrency must be from 1 to {MAX_CONCURRENCY}, got {concurrency}")
    for name in POSITIVE_NUMBERS:  # nan passes "<= 0" and inf passes everything: both are refused here
        if name in values and not (math.isfinite(values[name]) and values[name] > 0):
            problems.append(f"{sources[name]} must be a finite number above 0, got {values[name]:g}")
    # only for a command that calls the API: a config file shared with a BI host may name a CA file it lacks
    if need_api and values.get("ca_bundle") and not Path(values["ca_bundle"]).is_file():
        problems.append(f"--ca-bundle {values['ca_bundle']} is not a file")
    if values.get("ca_bundle") and values.get("insecure"):
        problems.append("--ca-bundle and --insecure contradict each other: give one")
    if "max_rps" in values and not (math.isfinite(values["max_rps"]) and values["max_rps"] >= 0):
        problems.append(
            f"{sources['max_rps']} must be a finite number of requests per second, or 0 for no budget, "
            f"got {values['max_rps']:g}"
        )
    if "subtasks" in values and values["subtasks"] not in SUBTASK_MODES:
        problems.append(f"{sources['subtasks']} must be one of {', '.join(SUBTASK_MODES)}, got {values['subtasks']!r}")
    if "max_attempts" in values and not 1 <= values["max_attempts"] <= 20:
        problems.append("max_attempts must be from 1 to 20")
    if "workers" in values and not 1 <= values["workers"] <= MAX_WORKERS:
        problems.append(f"workers must be from 1 to {MAX_WORKERS}, got {values['workers']}")
    if "max_failure_rate" in values and not 0 <= values["max_failure_rate"] <= 1:  # nan fails both
        problems.append(f"{sources['max_failure_rate']} must be from 0 to 1, got {values['max_failure_rate']:g}")
    for name in ("max_missing_tags", "max_missed_runs"):
        if name in values and values[name] < 0:
            problems.append(f"{sources[name]} must be 0 or more, got {values[name]}")
    if "metrics_file" in values and values["metrics_file"].suffix != ".prom":
        problems.append(
            f"{sources['metrics_file']} {values['metrics_file']}: the name must end in .prom, the only files "
            "node_exporter's textfile collector reads"
        )
    gateway = urlsplit(values.get("pushgateway") or "")
    if gateway.username is not None or gateway.password is not None:  # the URL is not repeated: it holds a secret
        problems.append(f"{sources['pushgateway']}: a URL with credentials is not supported")
    elif values.get("pushgateway") and (gateway.scheme not in ("http", "https") or not gateway.hostname):
        problems.append(f"{sources['pushgateway']} {values['pushgateway']!r} is not an http(s) URL")

    credentials: Credentials | None = None
    if need_api:
        try:
            credentials = Credentials.from_env(credentials_env, endpoint)
        except ConfigError as exc:
            problems.append(str(exc))
    if problems:
        raise ConfigError("; ".join(problems))
    return Settings(
        endpoint=(endpoint or "").rstrip("/"),
        project_id=values.get("project_id", ""),
        credentials=credentials or Credentials("token"),
        **{k: v for k, v in values.items() if k not in ("endpoint", "project_id")},
    )


def default_work_dir(remote: str, environ: Mapping[str, str]) -> Path:
    """Where a run keeps the local copy of a remote data directory: ``$XDG_CACHE_HOME/swr-etl/<bucket>/<prefix>``."""
    cache = environ.get("XDG_CACHE_HOME") or str(Path(environ.get("HOME") or Path.home()) / ".cache")
    return Path(cache) / "swr-etl" / remote.split("://", 1)[1]


def _convert(raw: Any, kind: str) -> Any:
    if kind == "str":
        return str(raw).strip()
    if kind == "path":
        return Path(str(raw)).expanduser()
    if kind == "bool":
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"expected true or false, got {raw!r}")
    if kind in ("int", "float"):
        if isinstance(raw, bool):
            raise ValueError(f"expected a number, got {raw!r}")
        try:
            return int(raw) if kind == "int" else float(raw)
        except (TypeError, ValueError):
            raise ValueError(f"expected {'an integer' if kind == 'int' else 'a number'}, got {raw!r}") from None
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    cleaned = [str(i).strip() for i in items if str(i).strip()]
    if kind == "ids":
        return tuple(dict.fromkeys(cleaned))
    try:
        return tuple(dict.fromkeys(int(i) for i in cleaned))
    except ValueError:
        raise ValueError(f"expected integers, got {raw!r}") from None
