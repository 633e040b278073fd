"""What an answer of the API means: its JSON object, or the error that decides whether to retry. Decided here
only, for the client and for the IAM token exchange alike."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import requests

from pipeline.errors import ApiError, AuthError, BadResponseError, RetryableApiError
from pipeline.logs import RedactSecrets

# 429 and the 5xx answers that mean "try again later"; 501 and 505 do not
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_AFTER_S = 120.0
BODY_EXCERPT = 300
_redact = RedactSecrets(()).redact  # every secret registered (credentials, IAM tokens): none in an error


def classify(response: requests.Response, path: str) -> dict[str, Any]:
    """Turn a response into its JSON object, or raise the error class that decides retry or fail."""
    status = response.status_code
    request_id = response.headers.get("X-Request-Id")
    if 200 <= status < 300:
        try:
            data = json.loads(response.content)
        except ValueError as exc:
            raise BadResponseError(
                f"HTTP {status} from GET {path} is not JSON (request id {request_id or '-'}): "
                f"{_redact(_excerpt(response.content))!r}",
                path=path,
            ) from exc
        if not isinstance(data, dict):
            raise BadResponseError(f"HTTP {status} from GET {path} is JSON but not an object", path=path)
        return data
    error_code = error_msg = None
    try:
        body = json.loads(response.content)
        if isinstance(body, dict):
            error_code = _str_or_none(body.get("error_code"))
            error_msg = _str_or_none(body.get("error_msg"))
            error_msg = None if error_msg is None else _redact(error_msg)  # a gateway may repeat the token
    except ValueError:
        pass
    details: dict[str, Any] = {
        "error_code": error_code,
        "error_msg": error_msg,
        "request_id": request_id,
        "body_excerpt": _redact(_excerpt(response.content)),
        "method": response.request.method or "GET",
    }
    if 300 <= status < 400:
        # never followed: a redirect to another host would carry our credentials there
        details["error_msg"] = f"redirected to {response.headers.get('Location', '?')}; check the endpoint"
        raise ApiError(status, path, **details)
    if status in RETRYABLE_STATUS:
        raise RetryableApiError(
            status, path, retry_after=parse_retry_after(response.headers.get("Retry-After")), **details
        )
    if status in (401, 403):
        raise AuthError(status, path, **details)
    raise ApiError(status, path, **details)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header: a number (fractions accepted) or an HTTP date."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds()
        except (TypeError, ValueError):
            return None
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


def _excerpt(body: bytes) -> str:
    return body[:BODY_EXCERPT].decode("utf-8", "replace")


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)
