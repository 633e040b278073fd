"""Every error the pipeline raises on purpose, grouped by what the caller should do about it.

    SwrEtlError                     root: every class carries its context in attributes and a ``hint``
    ├── ConfigError                 FIX AND RUN AGAIN: bad usage or configuration (exit 2)
    │   └── QueryError              the SQL given to ``swr-etl query`` did not run
    ├── RunError                    RETRY LATER: the API, the network or the storage failed (exit 1); what
    │   │                           landed is kept and the next run catches up
    │   ├── ApiError                the API answered with an error status, or redirected (not retried)
    │   │   ├── AuthError           401 / 403: the credentials were refused
    │   │   └── RetryableApiError   429, 500, 502, 503, 504: retried with backoff
    │   ├── TransportError          no usable answer: connection refused or cut, timeout (retried)
    │   │   ├── BadResponseError    a 2xx that is not the JSON the API documents (a proxy's page)
    │   │   ├── TlsError            the server's certificate was refused (not retried)
    │   │   │   └── NotTlsError     an https:// endpoint whose server answers plain HTTP
    │   │   └── ResponseTooLarge    an answer over --max-response-mb, compressed or not (not retried)
    │   ├── PagingError             the paginator refused: bad limit, or it would ask an offset twice
    │   ├── LandingError            the raw landing could not be written or read
    │   ├── UploadFailed            landed fetches could not be copied to a data directory in the store
    │   ├── LoadError               the lake could not be written
    │   ├── WarehouseError          the warehouse could not be built or queried
    │   │   └── WarehouseWriteError the warehouse file could not be written (disk full, permissions)
    │   ├── Busy                    another swr-etl process is writing in the data directory
    │   ├── Stopped                 the run is stopping (Ctrl-C, or a fatal error in another thread)
    │   ├── ExtractFailed           some executions or instances failed, the others were landed
    │   └── DoctorFailed            at least one of ``swr-etl doctor``'s checks failed
    ├── DataError                   A RECORD IS AT FAULT: it is skipped or kept in ``rejects``; the rest goes on
    │   ├── UnusableIdError         an id no folder can hold (empty, or too long once encoded)
    │   └── RejectsFound            --strict and some records were rejected (exit 3)
    ├── AlertsFound                 ``swr-etl check`` found alerts (exit 1): the replication needs someone
    └── Interrupted                 Ctrl-C or SIGTERM (exit 130)

The library raises; :func:`exit_status` is the one place that turns an error into an exit status (click's own
usage errors aside, which the CLI gives the same 2), and only the CLI prints it. Messages never contain a
header value, a token, a key or a password.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.extraction.summary import ExtractSummary

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_REJECTS = 3
EXIT_INTERRUPTED = 130


class SwrEtlError(Exception):
    """Root of every error raised by the pipeline on purpose. ``hint`` says what to do, or is empty."""

    hint = ""


def exit_status(exc: BaseException) -> int:
    """The exit status of a command that ends with ``exc``: the only place one is decided."""
    if isinstance(exc, Interrupted | KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(exc, ConfigError):
        return EXIT_USAGE
    if isinstance(exc, RejectsFound):
        return EXIT_REJECTS
    return EXIT_FAILED


def describe(exc: BaseException) -> str:
    """What an error is, in one line for people: its message, or what it is when it is not one of ours."""
    if isinstance(exc, Interrupted | KeyboardInterrupt):
        return "interrupted"
    if isinstance(exc, SwrEtlError):
        return str(exc)
    return f"unexpected {type(exc).__name__}: {exc}"


class ConfigError(SwrEtlError):
    """Bad usage or configuration: a missing setting, a malformed value, an unreadable config file."""


class QueryError(ConfigError):
    """The SQL given to ``swr-etl query`` did not run."""

    hint = 'the tables and views are listed by: swr-etl query "SHOW TABLES"'


class RunError(SwrEtlError):
    """The API, the network or the storage failed: what landed is kept, and a later run catches up."""


class ApiError(RunError):
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


class TransportError(RunError):
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


class Stopped(RunError):
    """The run is stopping (Ctrl-C, or a fatal error elsewhere): a request waiting to be retried gave up, or a
    transform lane was told to stop."""


class PagingError(RunError):
    """The paginator refused: a limit out of range, or a plan that would ask an offset twice."""


class LandingError(RunError):
    """The raw landing could not be written or read."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        self.path = path
        super().__init__(message)


class UploadFailed(RunError):
    """Fetches landed in the work folder could not be copied to the data directory in the store."""

    hint = "nothing is lost: the next run uploads them, and loads them then"


class LoadError(RunError):
    """The lake could not be written. What readers see is unchanged (or, if publishing was cut short, each
    partition is whole and the next run finishes the job)."""

    hint = "free some space (or fix the permissions or credentials) and run again: nothing was half-written"

    def __init__(self, message: str, *, path: str | None = None) -> None:
        self.path = path
        super().__init__(message)


class WarehouseError(RunError):
    """The warehouse could not be built or queried."""

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


class WarehouseWriteError(WarehouseError):
    """The warehouse file could not be written (a full disk, a read-only folder): no view is at fault."""


class Busy(RunError):
    """Another swr-etl process is writing in this data directory."""

    hint = "wait for it to finish, or stop it"


class ExtractFailed(RunError):
    """Some executions or instances could not be fetched; the others were landed. ``cause`` is the first
    failure, ``summary`` the extract's summary."""

    def __init__(self, summary: ExtractSummary, cause: SwrEtlError) -> None:
        self.summary = summary
        self.cause = cause
        self.hint = cause.hint
        failed = [
            f"{n} {what} could not be {verb}"
            for n, what, verb in (
                (summary.instances_failed, "instances", "listed"),
                (summary.executions_failed, "executions", "fetched"),
            )
            if n
        ]
        super().__init__(f"{' and '.join(failed)}; first: {cause}")


class DoctorFailed(RunError):
    """At least one of ``swr-etl doctor``'s checks failed: exit 1, after the report."""


class DataError(SwrEtlError):
    """A record the API sent is at fault: it is skipped or kept in ``rejects``, and the rest goes on."""


class UnusableIdError(DataError):
    """An id the API sent cannot name a folder (empty, or too long once encoded): that object is skipped."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        self.path = path
        super().__init__(message)


class RejectsFound(DataError):
    """--strict and some records were rejected: the data is loaded, and the exit status says so."""

    def __init__(self, count: int) -> None:
        self.count = count
        super().__init__(f"{count} records were rejected (--strict): see the rejects table")


class AlertsFound(SwrEtlError):
    """``swr-etl check`` found alerts: the pipeline worked, and the replication it watches needs someone."""

    hint = 'each is a line above; swr-etl query "SELECT * FROM alerts" lists them too'


class Interrupted(SwrEtlError):
    """Ctrl-C or SIGTERM stopped the command: every file is whole, and the next run catches up."""

    def __init__(self) -> None:
        super().__init__("interrupted")
