"""Credential checks of the sandbox: static token, IAM-issued tokens, and AK/SK request signatures.

The AK/SK verifier recomputes the ``SDK-HMAC-SHA256`` signature the way Huawei Cloud's signer
(``huaweicloudsdkcore.signer.Signer``) builds it, without importing it:

* canonical request = ``METHOD\\n`` + canonical URI (path URL-decoded, each segment ``quote(seg, "~")``,
  a trailing ``/`` appended) + ``\\n`` + canonical query (pairs sorted by (key, value), both quoted,
  joined by ``&``) + ``\\n`` + ``name:value.strip()\\n`` per signed header + ``\\n`` + SignedHeaders +
  ``\\n`` + hex sha256 of the body (or the ``X-Sdk-Content-Sha256`` value);
* string to sign = ``SDK-HMAC-SHA256\\n`` + ``X-Sdk-Date`` + ``\\n`` + hex sha256(canonical request);
* signature = hex HMAC-SHA256(key=SK, string to sign).

Failure messages never contain the token, the signature or the secret key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import parse_qsl, quote, unquote

from pipeline.sandbox.settings import SandboxConfig

__all__ = ["ALGORITHM", "AuthError", "Authenticator", "IssuedToken", "canonical_request", "sign"]

ALGORITHM = "SDK-HMAC-SHA256"
DATE_FORMAT = "%Y%m%dT%H%M%SZ"
MAX_CLOCK_SKEW_S = 15 * 60
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_AUTH_RE = re.compile(
    r"^SDK-HMAC-SHA256\s+Access=(?P<ak>[^,\s]+)\s*,\s*SignedHeaders=(?P<signed>[^,\s]+)\s*,"
    r"\s*Signature=(?P<sig>[0-9a-fA-F]+)\s*$"
)
_DEFAULT_TTL_S = 24 * 3600.0


class AuthError(Exception):
    """Credentials missing or wrong. ``str()`` is safe to send back (holds no secret)."""

    def __init__(self, reason: str, status: int = 401) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_at: str  # ISO 8601 UTC
    issued_at: str


def _header_value(value: str) -> str:
    """http.server decodes headers as latin-1; the signer sent UTF-8 bytes. Undo that."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


def canonical_request(
    method: str, raw_path: str, raw_query: str, headers: Mapping[str, str], signed_headers: str, body: bytes
) -> str:
    """The canonical request of a received request; ``headers`` keys must be lower-case."""
    uri = "/".join(quote(seg, safe="~") for seg in unquote(raw_path).split("/"))
    if not uri.endswith("/"):
        uri += "/"
    pairs = sorted(parse_qsl(raw_query, keep_blank_values=True))
    query = "&".join(f"{quote(k, safe='~')}={quote(v, safe='~')}" for k, v in pairs)
    lines = []
    for name in signed_headers.split(";"):
        value = headers.get(name)
        if value is None:
            raise AuthError(f"signed header {name!r} is missing")
        lines.append(f"{name}:{_header_value(value).strip()}\n")
    payload = _EMPTY_SHA256
    if body:
        payload = headers.get("x-sdk-content-sha256") or hashlib.sha256(body).hexdigest()
    return f"{method.upper()}\n{uri}\n{query}\n{''.join(lines)}\n{signed_headers}\n{payload}"


def sign(sk: str, sdk_date: str, canonical: str) -> str:
    """Hex signature of a canonical request."""
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    string_to_sign = f"{ALGORITHM}\n{sdk_date}\n{digest}"
    return hmac.new(sk.encode("utf-8"), string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


class Authenticator:
    """Checks every ``/v2`` request and issues IAM tokens. Thread-safe."""

    def __init__(
        self,
        config: SandboxConfig,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._clock = clock
        self._monotonic = monotonic
        ttl = config.faults.iam_token_ttl_s
        self._ttl = _DEFAULT_TTL_S if ttl is None else ttl
        self._lock = threading.Lock()
        self._tokens: dict[str, float] = {}  # token -> monotonic expiry

    # ------------------------------------------------------------------ IAM

    def issue_token(self, body: bytes) -> IssuedToken:
        """Answer ``POST /v3/auth/tokens`` (password method). Raises :class:`AuthError` (400 or 401)."""
        cfg = self._config
        try:
            auth = json.loads(body or b"null")["auth"]
            identity = auth["identity"]
            user = identity["password"]["user"]
            methods, name, password = identity["methods"], user["name"], user["password"]
            domain = user["domain"]["name"]
            project = auth.get("scope", {}).get("project", {})
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise AuthError("the request body is not an IAM password authentication request", 400) from exc
        if not isinstance(methods, list) or "password" not in methods:
            raise AuthError("only the password method is supported", 400)
        ok = (
            _same(str(name), cfg.iam_username)
            & _same(str(password), cfg.iam_password)
            & _same(str(domain), cfg.iam_domain)
        )
        if not ok:
            raise AuthError("The username or password is wrong.")
        if isinstance(project, dict) and "id" in project and project["id"] != cfg.project_id:
            raise AuthError("the project in scope is not accessible")
        token = "MIIsandbox" + secrets.token_urlsafe(48)
        now_wall, now_mono = self._clock(), self._monotonic()
        with self._lock:
            self._tokens = {t: exp for t, exp in self._tokens.items() if exp > now_mono}
            self._tokens[token] = now_mono + self._ttl
        return IssuedToken(token, _iso(now_wall + self._ttl), _iso(now_wall))

    # ------------------------------------------------------------------ request checks

    def check(self, method: str, raw_path: str, raw_query: str, headers: Mapping[str, str], body: bytes) -> str:
        """Accept or raise :class:`AuthError`. ``headers`` keys are lower-case. Returns the scheme used."""
        project = headers.get("x-project-id")
        if project is not None and project.strip() != self._config.project_id:
            raise AuthError("X-Project-Id does not match the project of the credentials")
        token = headers.get("x-auth-token")
        if token is not None:
            self._check_token(token.strip())
            return "token"
        authorization = headers.get("authorization")
        if authorization is not None:
            self._check_signature(method, raw_path, raw_query, headers, body, authorization)
            return "aksk"
        raise AuthError("no X-Auth-Token and no Authorization header")

    def _check_token(self, token: str) -> None:
        if token and _same(token, self._config.token):
            return
        with self._lock:
            expiry = self._tokens.get(token)
        if expiry is None:
            raise AuthError("the token is invalid")
        if expiry <= self._monotonic():
            raise AuthError("the token has expired")

    def _check_signature(
        self,
        method: str,
        raw_path: str,
        raw_query: str,
        headers: Mapping[str, str],
        body: bytes,
        authorization: str,
    ) -> None:
        match = _AUTH_RE.match(authorization.strip())
        if match is None:
            raise AuthError("the Authorization header is not an SDK-HMAC-SHA256 signature")
        sdk_date = headers.get("x-sdk-date")
        if sdk_date is None:
            raise AuthError("X-Sdk-Date is missing")
        try:
            signed_at = datetime.strptime(sdk_date.strip(), DATE_FORMAT).replace(tzinfo=UTC).timestamp()
        except ValueError as exc:
            raise AuthError("X-Sdk-Date is not in the format YYYYMMDDTHHMMSSZ") from exc
        if abs(self._clock() - signed_at) > MAX_CLOCK_SKEW_S:
            raise AuthError("X-Sdk-Date is more than 15 minutes away from the server time")
        if not _same(match["ak"], self._config.ak):
            raise AuthError("the access key is unknown")
        canonical = canonical_request(method, raw_path, raw_query, headers, match["signed"], body)
        expected = sign(self._config.sk, sdk_date.strip(), canonical)
        if not hmac.compare_digest(expected, match["sig"].lower()):
            raise AuthError("the signature does not match")


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))
