"""Every error the pipeline raises on purpose. One root, so callers can catch us and nothing else.

    SwrEtlError                     root: everything below carries its context in attributes
    ├── ConfigError                 bad usage or configuration (exit status 2)
    ├── ApiError                    the API answered with an error status (status, error_code, error_msg,
    │   │                           request_id, path), or redirected — fatal: retrying would not help
    │   ├── AuthError               401 / 403: the credentials were refused
    │   └── RetryableApiError       429, 500, 502, 503, 504: retried with backoff
    ├── TransportError              no usable answer: connection refused or cut, timeout (retried)
    │   ├── BadResponseError        a 2xx whose body is not JSON (a proxy's page) (retried), or not the
    │   │                           listing the API documents (not retried: asking again gives the same)
    │   ├── TlsError                the server's certificate was refused (not retried)
    │   │   └── NotTlsError         an https:// endpoint whose server answers plain HTTP (not retried)
    │   └── ResponseTooLarge        an answer over --max-response-mb, compressed or not (not retried)
    ├── Stopped                     the run is stopping (Ctrl-C, or a fatal error elsewhere)
    ├── PagingError                 the paginator refused: bad limit, or it would ask an offset twice
    └── LandingError                the raw landing could not be written or read

The library raises; only the CLI turns an error into one ``error: ...`` line and an exit status.
Messages never contain a header value, a token, a key or a password.
"""

from __future__ import annotations


class SwrEtlError(Exception):
    """Root of every error raised by the pipeline on purpose."""

    exit_code = 1
    hint = ""


class ConfigError(SwrEtlError):
    """Bad usage or configuration: a missing setting, a malformed value, an unreadable config file."""

    exit_code = 2


class ApiError(SwrEtlError):
    """The SWR API answered with an error status.

    ``path`` is the request path (never the query string of a signed request, never a header).
    """

    def __init__(
        self,
        status: int,
        path: str,
        *,
        error_code: str | None = None,
        error_msg: str | None = None,
        request_id: str | None = None,
        body_excerpt: str | None = None,
        method: str = "GET",
    ) -> None:
        self.status = status
        self.path = path
        self.error_code = error_code
        self.error_msg = error_msg
        self.request_id = request_id
        self.body_excerpt = body_excerpt
        self.method = method
        super().__init__(self._describe())

    def _describe(self) -> str:
        parts = [f"HTTP {self.status} from {self.method} {self.path}"]
        if self.error_code or self.error_msg:
            parts.append(f"{self.error_code or '-'}: {self.error_msg or '-'}")
        elif self.body_excerpt:
            parts.append(f"body: {self.body_excerpt}")
        if self.request_id:
            parts.append(f"request id {self.request_id}")
        return ", ".join(parts)


class AuthError(ApiError):
    """401 or 403: the credentials were refused."""

    hint = (
        "check SWR_AUTH_TOKEN, or CLOUD_SDK_AK/CLOUD_SDK_SK, or the SWR_IAM_* settings, "
        "and that they belong to SWR_PROJECT_ID"
    )


class RetryableApiError(ApiError):
    """429, 500, 502, 503 or 504: worth another try after a pause (``retry_after`` seconds when the server said so)."""

    def __init__(self, status: int, path: str, *, retry_after: float | None = None, **kw: str | None) -> None:
        self.retry_after = retry_after
        super().__init__(status, path, **kw)  # type: ignore[arg-type]


class TransportError(SwrEtlError):
    """No usable answer: the connection failed, was cut mid-body, or timed out."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        self.path = path
        super().__init__(message)


class BadResponseError(TransportError):
    """A success status whose body is not the JSON object the API documents (a proxy's HTML page)."""


class TlsError(TransportError):
    """The server's TLS certificate could not be verified. Retrying would not help."""

    hint = "check the endpoint; a private CA needs --ca-bundle FILE"


class NotTlsError(TlsError):
    """The endpoint says https:// but the server answered in plain HTTP: the message says what to change."""

    hint = ""


class ResponseTooLarge(TransportError):
    """An answer larger than --max-response-mb, as sent or once decompressed. The same request would get the
    same answer, so it is not retried; the message names the limit and how to raise it."""


class Stopped(SwrEtlError):
    """The run is stopping: a request waiting to be retried gave up."""


class PagingError(SwrEtlError):
    """The paginator refused: a limit out of range, or a plan that would ask an offset twice."""


class LandingError(SwrEtlError):
    """The raw landing could not be written or read."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        self.path = path
        super().__init__(message)


class UnusableIdError(LandingError):
    """An id the API sent cannot name a folder (empty, or too long once encoded): that object is skipped."""
