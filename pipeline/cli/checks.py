"""The checks of ``swr-etl doctor``: each one function that returns a :class:`Check`, and never prints.

:mod:`pipeline.cli.doctor` runs them in order and renders the report. No detail holds a secret: the
credentials are named by their kind and variables, and errors come from the client, which masks every
secret it knows.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import ssl
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import pyarrow.fs as pafs
import requests

from pipeline.api.auth import IamAuth
from pipeline.api.client import ApiResponse, SwrClient
from pipeline.api.transport import PLAIN_HTTP_SIGNS, in_clear_text
from pipeline.config import Settings
from pipeline.errors import ApiError, AuthError, BadResponseError, ConfigError, SwrEtlError, TlsError
from pipeline.load.storage import LakeStore, open_store

Status = Literal["pass", "warn", "fail", "skip"]
MIB = 1 << 20
DISK_FAIL_BELOW = 100 * MIB
DISK_WARN_BELOW = 1024 * MIB
CERT_WARN_DAYS = 14  # a certificate that expires sooner is a warning: the runs will fail when it does
PROBE_PREFIX = "_doctor"  # where the lake's write test goes: names starting with "_" are not data


@dataclass(frozen=True)
class Check:
    """One line of the doctor's report: what was checked, how it went, and for a problem what to do."""

    name: str
    status: Status
    detail: str
    fix: str = ""

    @property
    def ok(self) -> bool | None:
        """True when passed (warnings included), False when failed, None when not checked."""
        return None if self.status == "skip" else self.status != "fail"


def skipped(name: str, why: str) -> Check:
    return Check(name, "skip", f"not checked: {why}")


# -- the settings -------------------------------------------------------------------------------------------
def check_settings(
    resolve: Callable[[bool], Settings], environ: Mapping[str, str]
) -> tuple[Check, Settings | None, Settings | None]:
    """The settings as a run resolves them; also those that need no API (for the local checks), if they do.
    Returns the check, the full settings (or None) and the local ones (or None)."""
    try:
        full = resolve(True)
    except ConfigError as exc:
        fix = "set what is missing or wrong (flag, environment variable or config file): see swr-etl doctor --help"
        check = Check("settings", "fail", str(exc), fix)
        try:
            return check, None, resolve(False)
        except ConfigError:
            return check, None, None
    detail = f"endpoint {full.endpoint}, project {full.project_id}, credentials: {describe_credentials(full, environ)}"
    return Check("settings", "pass", detail), full, full


def describe_credentials(settings: Settings, environ: Mapping[str, str]) -> str:
    """Which kind of credentials is used, by the variables that hold them (never a value), and what else is
    set but not used (the token wins, then AK/SK, then IAM)."""
    creds = settings.credentials
    if creds.kind == "token":
        used = "a token (SWR_AUTH_TOKEN)"
    elif creds.kind == "aksk":
        used = "AK/SK (CLOUD_SDK_AK, CLOUD_SDK_SK" + (", CLOUD_SDK_SECURITY_TOKEN)" if creds.security_token else ")")
    else:
        used = f"IAM user {creds.iam_username} of domain {creds.iam_domain} (SWR_IAM_*) via {creds.iam_endpoint}"
    present = {
        "token": bool(environ.get("SWR_AUTH_TOKEN", "").strip()),
        "aksk": bool(environ.get("CLOUD_SDK_AK", "").strip()),
        "iam": bool(environ.get("SWR_IAM_USERNAME", "").strip()),
    }
    unused = {"token": "SWR_AUTH_TOKEN", "aksk": "CLOUD_SDK_AK/SK", "iam": "SWR_IAM_*"}
    ignored = [unused[kind] for kind, is_set in present.items() if is_set and kind != creds.kind]
    return used + (f"; also set, not used: {', '.join(ignored)}" if ignored else "")


# -- the network --------------------------------------------------------------------------------------------
def endpoint_address(endpoint: str) -> tuple[str, int] | None:
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    try:
        return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:  # a port that is not a number
        return None


def proxy_for(endpoint: str) -> tuple[str, int] | None:
    """The proxy a run goes through (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, NO_PROXY), as host and port only:
    a proxy URL may carry a password."""
    proxy = requests.utils.select_proxy(endpoint, requests.utils.get_environ_proxies(endpoint))
    if not proxy:
        return None
    parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    return (parts.hostname or "?"), parts.port or 80


def check_connection(settings: Settings) -> Check:
    """The endpoint's host name resolves, and a TCP connection opens within --connect-timeout."""
    address = endpoint_address(settings.endpoint)
    if address is None:
        return skipped("connection", "no http(s) endpoint")
    proxy = proxy_for(settings.endpoint)
    host, port = proxy or address
    via = f" (the proxy for {address[0]}, from the *_PROXY variables)" if proxy else ""
    try:
        found = {str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)}
    except OSError as exc:
        fix = "check the host name in the endpoint (--endpoint, SWR_ENDPOINT) and this machine's DNS"
        return Check("connection", "fail", f"{host}{via} does not resolve: {exc.strerror or exc}", fix)
    resolved = f"{host}{via} resolves to {', '.join(sorted(found)[:3])}" + (" and more" if len(found) > 3 else "")
    resolved = host if found == {host} else resolved  # an address, not a name
    started = time.monotonic()
    try:
        socket.create_connection((host, port), timeout=settings.connect_timeout).close()
    except TimeoutError:
        detail = f"{resolved}; no TCP connection to port {port} within {settings.connect_timeout:g} s"
        fix = "a firewall may drop the packets: check the port, HTTPS_PROXY/NO_PROXY, or raise --connect-timeout"
        return Check("connection", "fail", detail, fix)
    except OSError as exc:
        detail = f"{resolved}; TCP port {port}: {exc.strerror or exc}"
        fix = "check the port in the endpoint and that the service is up; a firewall may refuse the connection"
        return Check("connection", "fail", detail, fix)
    elapsed_ms = (time.monotonic() - started) * 1000
    return Check("connection", "pass", f"{resolved}; TCP port {port} opens in {elapsed_ms:.0f} ms")


def ca_source(settings: Settings, environ: Mapping[str, str]) -> tuple[str, str]:
    """The CA certificates a run verifies the endpoint with, as :class:`pipeline.api.transport.Transport` picks
    them: the file, and where it came from."""
    if settings.ca_bundle:
        return str(settings.ca_bundle), f"--ca-bundle {settings.ca_bundle}"
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        if environ.get(name):
            return environ[name], name
    return requests.utils.DEFAULT_CA_BUNDLE_PATH, "the default CA bundle"


def check_tls(settings: Settings, environ: Mapping[str, str]) -> Check:
    """For https: the TLS handshake, and the certificate verified with the CAs a run would use."""
    address = endpoint_address(settings.endpoint)
    if address is None:
        return skipped("tls", "no http(s) endpoint")
    if urlsplit(settings.endpoint).scheme == "http":
        if in_clear_text(settings.endpoint):
            fix = "use https:// in the endpoint: the credentials and the data travel in clear text"
            return Check("tls", "warn", "plain http, not TLS", fix)
        return Check("tls", "pass", "plain http, not TLS: nothing to verify (this machine only)")
    proxy = proxy_for(settings.endpoint)
    if proxy:
        return skipped("tls", f"through the proxy {proxy[0]}:{proxy[1]}: the API call below checks TLS")
    host, port = address
    cafile, source = ca_source(settings, environ)
    is_dir = Path(cafile).is_dir()  # requests takes a folder of hashed certificates too
    context = ssl.create_default_context(cafile=None if is_dir else cafile, capath=cafile if is_dir else None)
    if settings.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((host, port), timeout=settings.connect_timeout) as raw:
            raw.settimeout(settings.read_timeout)
            with context.wrap_socket(raw, server_hostname=host) as tls:
                version, cert = tls.version(), tls.getpeercert()
    except ssl.SSLCertVerificationError as exc:
        fix = (
            f"check that {settings.ca_bundle} holds the CA that signed the server's certificate"
            if settings.ca_bundle
            else "a private CA needs --ca-bundle FILE (or SWR_ETL_CA_BUNDLE); check the host name in the endpoint"
        )
        return Check("tls", "fail", f"the certificate is not verified ({source}): {exc.verify_message}", fix)
    except ssl.SSLError as exc:
        if any(sign in str(exc).lower() for sign in PLAIN_HTTP_SIGNS):
            detail = f"the server at https://{host}:{port} answers plain HTTP, not TLS"
            return Check("tls", "fail", detail, "use http:// in the endpoint, or check its port")
        return Check("tls", "fail", f"TLS handshake failed: {exc.reason or exc}", "check the port in the endpoint")
    except TimeoutError:
        detail = f"no TLS handshake within {settings.read_timeout:g} s"
        return Check("tls", "fail", detail, "check the port in the endpoint: the server does not speak TLS there")
    except OSError as exc:
        return Check("tls", "fail", f"TLS handshake failed: {exc.strerror or exc}", "check the port in the endpoint")
    if settings.insecure:
        fix = "give --ca-bundle FILE instead of --insecure for anything but a test"
        return Check("tls", "warn", f"{version} handshake; the certificate is NOT verified (--insecure)", fix)
    expires = datetime.fromtimestamp(ssl.cert_time_to_seconds(str(cert.get("notAfter"))), UTC) if cert else None
    detail = f"{version}, the certificate of {host} verified ({source})"
    if expires is None:
        return Check("tls", "pass", detail)
    days = (expires - datetime.now(UTC)).days
    detail += f", valid until {expires:%Y-%m-%d}"
    if days < CERT_WARN_DAYS:
        return Check("tls", "warn", f"{detail} ({days} days)", "ask the endpoint's owner to renew its certificate")
    return Check("tls", "pass", detail)


# -- the credentials and the project ------------------------------------------------------------------------
@dataclass(frozen=True)
class Call:
    """The one cheap authenticated call: its path and its answer, or the error it ended with."""

    path: str
    response: ApiResponse | None = None
    error: SwrEtlError | None = None


def check_iam_token(client: SwrClient) -> Check:
    """For IAM credentials: the token fetch, before any call to SWR."""
    creds = client.settings.credentials
    who = f"IAM user {creds.iam_username} of domain {creds.iam_domain} at {creds.iam_endpoint}"
    auth = client.auth
    if not isinstance(auth, IamAuth):
        return skipped("iam_token", "the credentials are not an IAM user's")
    try:
        auth.refresh()  # the client's own token, which the call below then reuses
    except ApiError as exc:
        fix = "check SWR_IAM_USERNAME, SWR_IAM_PASSWORD, SWR_IAM_DOMAIN, and that the user may use SWR_PROJECT_ID"
        return Check("iam_token", "fail", f"{who}: refused: {exc}", fix)
    except SwrEtlError as exc:
        fix = "check SWR_IAM_ENDPOINT (or the region in the endpoint it is derived from)"
        return Check("iam_token", "fail", f"{who}: {exc}", exc.hint or fix)
    return Check("iam_token", "pass", f"{who}: a token was issued")


def list_instances(client: SwrClient) -> Call:
    path = client.path("instances")
    try:
        return Call(path, response=client.get(path, {"offset": 0, "limit": 1}))
    except SwrEtlError as exc:
        return Call(path, error=exc)


def check_credentials(call: Call) -> Check:
    """The credentials, by the answer to the cheap call: its status and the count of instances."""
    what = f"GET {call.path}?limit=1"
    if call.response is not None:
        data = call.response.data
        if not isinstance(data.get("instances"), list):
            fix = "check the endpoint: it must be the base URL of the SWR API"
            return Check("credentials", "fail", f"{what}: HTTP {call.response.status}, but no instance list", fix)
        total = data.get("total")
        count = total if isinstance(total, int) and not isinstance(total, bool) else len(data["instances"])
        return Check("credentials", "pass", f"{what}: HTTP {call.response.status}, {count} instances")
    exc = call.error
    if isinstance(exc, AuthError):
        return Check("credentials", "fail", f"refused: {exc}", AuthError.hint)
    if isinstance(exc, ApiError) and exc.status == 404:  # past the gateway, which checks the credentials first
        return Check("credentials", "pass", f"not refused: {exc} (see the project)")
    if isinstance(exc, ApiError):
        fix = "the service is failing or throttling: try again later" if exc.status >= 429 else "check the endpoint"
        return Check("credentials", "fail", str(exc), fix)
    if isinstance(exc, BadResponseError):
        fix = "a proxy or gateway answered instead of SWR: check the endpoint and HTTPS_PROXY/NO_PROXY"
        return Check("credentials", "fail", str(exc), fix)
    if isinstance(exc, TlsError):
        return Check("credentials", "fail", str(exc), exc.hint or "check the endpoint")
    fix = "check the network path to the endpoint; raise --read-timeout for a slow one"
    return Check("credentials", "fail", str(exc), (exc.hint if exc else "") or fix)


def check_project(settings: Settings, call: Call) -> Check:
    """That the call was for the configured project: answered for it, or refused or unknown because of it."""
    project = settings.project_id
    fix = (
        "check SWR_PROJECT_ID (--project-id): the id of the project in the endpoint's region "
        "(console: My Credentials > Projects), to which the credentials belong"
    )
    if call.response is not None:
        rows = call.response.data.get("instances")
        rows = rows if isinstance(rows, list) else []
        listed = {str(r["project_id"]) for r in rows if isinstance(r, dict) and r.get("project_id")}
        others = listed - {project}
        if others:
            return Check("project", "fail", f"the instances listed belong to project {sorted(others)[0]}", fix)
        return Check("project", "pass", f"the call was answered for project {project}")
    exc = call.error
    said = f"{exc.error_code} {exc.error_msg}".lower() if isinstance(exc, ApiError) else ""
    if isinstance(exc, ApiError) and (
        exc.status == 404 or (exc.status in (401, 403) and ("project" in said or project.lower() in said))
    ):
        return Check("project", "fail", f"project {project}: {exc}", fix)
    return skipped("project", "the call above failed")


# -- the data directory, the lake, the disk and the warehouse ----------------------------------------------
def nearest_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def creatable(path: Path, what: str, name: str, fix: str) -> Check:
    """A folder that does not exist yet: can a run create it?"""
    parent = nearest_existing(path)
    if not parent.is_dir():
        return Check(name, "fail", f"{path} cannot be created: {parent} is a file", fix)
    if not os.access(parent, os.W_OK | os.X_OK):
        return Check(name, "fail", f"{path} cannot be created: {parent} is not writable", fix)
    return Check(name, "pass", f"{path} does not exist yet: {what} creates it")


def check_data_dir(settings: Settings) -> Check:
    """Exists or can be created, is a folder, is writable; says whether it holds a landing and a lake."""
    path = settings.data_dir
    name = f"the local folder of {settings.remote}: " if settings.remote else ""
    fix = "give --data-dir (or SWR_ETL_DATA_DIR) a folder you can write, or fix its permissions"
    if not path.exists():
        found = creatable(path, "the first run", "data_dir", fix)
        return replace(found, detail=name + found.detail)
    if not path.is_dir():
        return Check("data_dir", "fail", f"{name}{path} is a file, not a folder", fix)
    try:
        fd, probe = tempfile.mkstemp(prefix=".swr-etl-doctor-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return Check("data_dir", "fail", f"{name}{path} is not writable: {exc.strerror or exc}", fix)
    landing = (path / "raw").is_dir() and any((path / "raw").iterdir())
    lake = settings.lake is None and (path / "lake" / "executions").exists()
    holds = [what for what, present in (("a raw landing", landing), ("a lake", lake)) if present]
    held = " and ".join(holds) if holds else "no landing or lake yet"
    if settings.lake is not None:
        held += " (the lake is elsewhere: --lake)"
    return Check("data_dir", "pass", f"{name}{path} is writable; it holds {held}")


def check_lake(settings: Settings, environ: Mapping[str, str]) -> Check:
    """Reachable and writable: a small file written and deleted under ``_doctor/`` (local or S3)."""
    store = open_store(settings.lake or str(settings.data_dir / "lake"), dict(environ))
    fix = "free some space, or give --lake (or SWR_ETL_LAKE) a folder you can write, or fix its permissions"
    if not store.remote:
        root = Path(store.root)
        if not root.exists():
            return creatable(root, "the first load", "lake", fix)
        if not root.is_dir():
            return Check("lake", "fail", f"{root} is a file, not a folder", fix)
    try:
        probe_write(store)
    except (OSError, SwrEtlError) as exc:
        return Check("lake", "fail", f"{store.url} is not writable: {exc}", lake_fix(store, str(exc), fix))
    tables = "it holds the lake's tables" if store.exists("executions") else "no tables yet"
    return Check("lake", "pass", f"{store.url} is writable (a file written and deleted in {PROBE_PREFIX}/); {tables}")


def probe_write(store: LakeStore) -> None:
    """Write and delete one small file under ``_doctor/``, and the folder too when nothing else is in it."""
    name = f"probe-{os.getpid()}-{secrets.token_hex(4)}"
    store.write_bytes(b"swr-etl doctor\n", PROBE_PREFIX, name)
    store.delete(PROBE_PREFIX, name)
    with contextlib.suppress(OSError):  # another doctor's probe may be there: then it removes the folder
        if not store.fs.get_file_info(pafs.FileSelector(store.path(PROBE_PREFIX), allow_not_found=True)):
            store.fs.delete_dir(store.path(PROBE_PREFIX))


def lake_fix(store: LakeStore, message: str, local: str) -> str:
    if not store.remote:
        return local
    bucket = store.root.split("/", 1)[0]
    if "NO_SUCH_BUCKET" in message or "does not exist" in message:
        return f"create the bucket {bucket}, or check its name in --lake and AWS_ENDPOINT_URL_S3"
    return (
        f"check that the bucket {bucket} exists, AWS_ENDPOINT_URL_S3, AWS_REGION, "
        "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, and that they may write there"
    )


def check_disk(path: Path, usage: Callable[[str], Any] = shutil.disk_usage) -> Check:
    """Free space on the file system of the data directory: a warning under 1 GiB, a failure under 100 MiB."""
    where = nearest_existing(path)
    where = where if where.is_dir() else where.parent
    try:
        found = usage(str(where))
    except OSError as exc:
        return Check("disk_space", "fail", f"{where}: {exc.strerror or exc}", "check the data directory")
    detail = f"{found.free / (1 << 30):.1f} GiB free of {found.total / (1 << 30):.1f} GiB at {where}"
    fix = "free some space, or choose a data directory on a larger disk: a run lands pages and writes the lake"
    if found.free < DISK_FAIL_BELOW:
        return Check("disk_space", "fail", detail, fix)
    if found.free < DISK_WARN_BELOW:
        return Check("disk_space", "warn", detail, fix)
    return Check("disk_space", "pass", detail)


def check_warehouse(settings: Settings) -> Check:
    """If ``warehouse.duckdb`` exists, it opens read-only, as BI tools open it."""
    import duckdb

    path = settings.data_dir / "warehouse.duckdb"
    if not path.exists():
        return Check("warehouse", "pass", f"{path} is not built yet: a run or a rebuild writes it")
    fix = "if a run is writing it, wait for it; else 'swr-etl rebuild --views-only' writes it again"
    made_for = None
    try:
        with duckdb.connect(str(path), read_only=True) as db:
            row = db.execute("SELECT count(*) FROM duckdb_views() WHERE NOT internal").fetchone()
            with contextlib.suppress(duckdb.Error):  # where the views were made for (none in a foreign file)
                made_for = db.execute("SELECT data_dir FROM _swr_etl_meta").fetchone()
    except duckdb.Error as exc:
        return Check("warehouse", "fail", f"{path} does not open read-only: {str(exc).splitlines()[0]}", fix)
    detail = f"{path} opens read-only: {row[0] if row else 0} views"
    if made_for and made_for[0] != str(settings.data_dir.resolve()):
        moved = "the next query or report rewrites it"
        return Check("warehouse", "warn", f"{detail}, made for the data directory {made_for[0]}", moved)
    return Check("warehouse", "pass", detail)
