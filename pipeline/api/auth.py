"""How a request to the SWR API is authenticated: one :class:`requests.auth.AuthBase` class per method.

- :class:`TokenAuth`: the ``X-Auth-Token`` header.
- :class:`AkSkAuth`: an AK/SK signature made per attempt by the vendor's own signer (``huaweicloudsdkcore``).
- :class:`IamAuth`: an IAM user and password exchanged for a token, cached, and fetched again once when the
  API refuses it (401).

:func:`auth_for` picks the class from the settings' credentials, once per client. A new method is a new
class here, a line in :data:`METHODS`, and a branch in :meth:`pipeline.config.Credentials.from_env`.
No ``repr`` shows a secret; every token IAM issues is registered with the log redactor before it is used.
"""

from __future__ import annotations

import logging
import threading
from typing import ClassVar
from urllib.parse import parse_qsl, urlsplit

from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer
from requests import PreparedRequest
from requests.auth import AuthBase

from pipeline.api.answers import classify
from pipeline.api.transport import Transport
from pipeline.config import Settings
from pipeline.errors import ApiError, AuthError, RetryableApiError
from pipeline.logs import register_secret

log = logging.getLogger("pipeline.api.client")  # the client's lines, of the extract stage

IAM_TOKENS_PATH = "/v3/auth/tokens"


class SwrAuth(AuthBase):
    """An authentication method. Subclasses set the credentials on each prepared request in ``__call__``."""

    name: ClassVar[str]  # the method's ``Credentials.kind``

    @classmethod
    def from_settings(cls, settings: Settings, transport: Transport) -> SwrAuth:
        raise NotImplementedError

    def ready(self) -> None:
        """Called before each attempt, outside the limit on requests in flight: get what ``__call__`` needs."""

    def renew_after_401(self, request: PreparedRequest) -> bool:
        """The API refused ``request`` with 401: renew the credentials, and say whether one more attempt can help."""
        return False

    def __call__(self, r: PreparedRequest) -> PreparedRequest:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class TokenAuth(SwrAuth):
    """A fixed token in ``X-Auth-Token``."""

    name = "token"

    def __init__(self, token: str) -> None:
        self._token = token

    @classmethod
    def from_settings(cls, settings: Settings, transport: Transport) -> TokenAuth:
        return cls(settings.credentials.token or "")

    def __call__(self, r: PreparedRequest) -> PreparedRequest:
        r.headers["X-Auth-Token"] = self._token
        return r


class AkSkAuth(SwrAuth):
    """An AK/SK signature over the final URL (path and query) and the headers ``X-Project-Id``, ``Host``,
    ``X-Sdk-Date`` and, when set, ``X-Security-Token``. The URL is replaced by the signer's canonical form
    (its query sorted), so that the server sees exactly what was signed."""

    name = "aksk"

    def __init__(self, ak: str, sk: str, project_id: str, security_token: str | None = None) -> None:
        self._signer = Signer(BasicCredentials(ak, sk))
        self._project_id = project_id
        self._security_token = security_token

    @classmethod
    def from_settings(cls, settings: Settings, transport: Transport) -> AkSkAuth:
        creds = settings.credentials
        return cls(creds.ak or "", creds.sk or "", settings.project_id, creds.security_token)

    def __call__(self, r: PreparedRequest) -> PreparedRequest:
        parts = urlsplit(r.url or "")
        headers = {"X-Project-Id": self._project_id}
        if self._security_token:
            headers["X-Security-Token"] = self._security_token
        request = SdkRequest(
            method=r.method or "GET",
            schema=parts.scheme,
            host=parts.netloc,
            resource_path=parts.path or "/",
            query_params=parse_qsl(parts.query, keep_blank_values=True),
            header_params=headers,
            body=r.body or "",
        )
        signed = self._signer.sign(request)
        r.url = signed.url
        r.headers.update(signed.header_params)
        return r

    def __repr__(self) -> str:
        return f"AkSkAuth(project_id={self._project_id!r}, security_token={'set' if self._security_token else None})"


class IamAuth(SwrAuth):
    """An IAM token for a user and password, scoped to the project, in ``X-Auth-Token``.

    The token is fetched before the first request and cached. When the API refuses it (401), one new token
    is fetched for all the threads refused with the same one, and each of them tries once more.
    """

    name = "iam"

    def __init__(
        self,
        transport: Transport,
        *,
        username: str,
        password: str,
        domain: str,
        endpoint: str,
        project_id: str,
    ) -> None:
        self._transport = transport
        self.username = username
        self._password = password
        self.domain = domain
        self.endpoint = endpoint.rstrip("/")
        self.project_id = project_id
        self._token: str | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, transport: Transport) -> IamAuth:
        creds = settings.credentials
        return cls(
            transport,
            username=creds.iam_username or "",
            password=creds.iam_password or "",
            domain=creds.iam_domain or "",
            endpoint=creds.iam_endpoint or "",
            project_id=settings.project_id,
        )

    def token(self) -> str:
        """The cached token, or the first one (fetched now)."""
        with self._lock:
            if self._token is None:
                self._token = self._fetch()
            return self._token

    def refresh(self, *, stale: str | None = None) -> str:
        """Fetch a new token and cache it; with ``stale``, only if the cached token is still that one.

        Threads refused with the same token wait on one lock: the first fetches a new token, the others find
        it already replaced and use it, so one expiry costs one call to IAM whatever the concurrency.
        Raises :class:`AuthError` when IAM refuses the user, :class:`RetryableApiError` when it is failing.
        """
        with self._lock:
            if self._token is None or stale is None or self._token == stale:
                self._token = self._fetch()
            return self._token

    def ready(self) -> None:
        self.token()

    def renew_after_401(self, request: PreparedRequest) -> bool:
        log.info("IAM token refused (HTTP 401); fetching a new one once")
        self.refresh(stale=request.headers.get("X-Auth-Token"))
        return True

    def __call__(self, r: PreparedRequest) -> PreparedRequest:
        r.headers["X-Auth-Token"] = self.token()
        return r

    def _fetch(self) -> str:

        body = {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {"name": self.username, "password": self._password, "domain": {"name": self.domain}}
                    },
                },
                "scope": {"project": {"id": self.project_id}},
            }
        }
        path = IAM_TOKENS_PATH
        response = self._transport.exchange("POST", f"{self.endpoint}{path}", path, json=body)
        token = response.headers.get("X-Subject-Token", "").strip()
        if response.status_code in (200, 201) and token:
            register_secret(token)  # before anything can print it: an error body that echoes it, a debug line
            log.info("got an IAM token for user %s", self.username)
            return token
        try:
            classify(response, path)
        except RetryableApiError:
            raise
        except ApiError as exc:
            raise AuthError(
                exc.status,
                path,
                error_code=exc.error_code,
                error_msg=exc.error_msg,
                request_id=exc.request_id,
                method="POST",
            ) from exc
        raise AuthError(response.status_code, path, error_msg="IAM answered without X-Subject-Token", method="POST")

    def __repr__(self) -> str:
        return f"IamAuth(username={self.username!r}, domain={self.domain!r}, endpoint={self.endpoint!r})"


# Credentials.kind -> the class that authenticates with them
METHODS: dict[str, type[SwrAuth]] = {cls.name: cls for cls in (TokenAuth, AkSkAuth, IamAuth)}


def auth_for(settings: Settings, transport: Transport) -> SwrAuth:
    """The authentication for the settings' credentials. ``transport`` carries what a method must fetch (an
    IAM token), with the same TLS, proxy and limits as the API calls."""
    return METHODS[settings.credentials.kind].from_settings(settings, transport)
