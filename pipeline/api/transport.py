"""The HTTP session under :class:`pipeline.api.client.SwrClient`, and one bounded exchange over it.

- One :class:`requests.Session`: a connection pool sized to the concurrency, proxy and CA-bundle variables
  read once, TLS verified unless ``--insecure`` (said loudly, once), plain ``http://`` beyond this machine
  said once too, redirects never followed.
- :meth:`Transport.exchange`: one request and its whole body, within ``--request-deadline``
  (:mod:`pipeline.api.deadline`) and ``--max-response-mb`` (:mod:`pipeline.api.bounded`). Every way it can fail
  becomes a :class:`TransportError` (or a subclass) that names the request, never a header.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3

from pipeline import __version__
from pipeline.api.bounded import ACCEPT_ENCODING, read_body
from pipeline.api.deadline import DeadlineAdapter, Watchdog
from pipeline.config import Settings
from pipeline.errors import NotTlsError, ResponseTooLarge, SwrEtlError, TlsError, TransportError

log = logging.getLogger("pipeline.api.client")  # the client's lines, of the extract stage

# what OpenSSL says when the other end of an https:// endpoint speaks plain HTTP
PLAIN_HTTP_SIGNS = ("wrong version number", "record layer failure", "http request")


class Transport:
    """The session and its bounds. Thread-safe, as requests' sessions are for sending."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        endpoint = settings.endpoint.rstrip("/")
        self.session = session = requests.Session()
        session.headers["User-Agent"] = f"swr-replication-etl/{__version__}"
        session.headers["Accept-Encoding"] = ACCEPT_ENCODING  # only the codings pipeline.api.bounded can undo
        # Proxy and CA-bundle variables are read once here: requests would otherwise scan the whole environment
        # on every request (docs/decisions/0009-http-client.md).
        session.proxies.update(requests.utils.get_environ_proxies(endpoint))
        ca_bundle = settings.ca_bundle or os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        if settings.insecure:
            session.verify = False
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)  # said once, below, not per request
            log.warning(
                "TLS verification is OFF (--insecure): anyone between here and %s can read the credentials "
                "and change the data",
                endpoint,
            )
        elif ca_bundle:
            session.verify = str(ca_bundle)
        urls = (endpoint, settings.credentials.iam_endpoint or endpoint)
        clear = [url for url in dict.fromkeys(urls) if in_clear_text(url)]
        if clear:
            log.warning(
                "%s %s plain http://: the credentials and the data travel in clear text; use https://",
                " and ".join(clear),
                "is" if len(clear) == 1 else "are",
            )
        session.trust_env = False
        adapter = DeadlineAdapter(pool_connections=2, pool_maxsize=settings.concurrency + 2, max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        self.timeout = (settings.connect_timeout, settings.read_timeout)
        self._watchdog = Watchdog()

    def exchange(self, method: str, url: str, path: str, **kwargs: Any) -> requests.Response:
        """Send one request and read its whole body (``response.content``) within the deadline and the limit.

        ``path`` names the request in errors. Raises :class:`TransportError` or a subclass.
        """
        with self._watchdog.arm(self.settings.request_deadline) as deadline:
            try:
                response = self.session.request(
                    method, url, timeout=self.timeout, allow_redirects=False, stream=True, **kwargs
                )
                try:
                    response._content = read_body(
                        response, limit_mb=self.settings.max_response_mb, method=method, path=path
                    )
                finally:
                    response.close()  # back to the pool when read whole, else closed
            except ResponseTooLarge:
                raise  # decided, even if the deadline passed meanwhile
            except (requests.RequestException, urllib3.exceptions.HTTPError, OSError, SwrEtlError) as exc:
                if deadline.finish():
                    raise self._deadline_passed(method, path) from exc
                if isinstance(exc, SwrEtlError):
                    raise
                raise _transport_error(exc, method, url, path) from exc
            if deadline.finish():  # the socket was shut mid-body: what looked like its end was the cut
                raise self._deadline_passed(method, path)
        return response

    def _deadline_passed(self, method: str, path: str) -> TransportError:
        seconds = self.settings.request_deadline
        return TransportError(
            f"no complete answer within {seconds:g} s (--request-deadline) on {method} {path}", path=path
        )

    def close(self) -> None:
        self.session.close()
        self._watchdog.close()


def _transport_error(exc: BaseException, method: str, url: str, path: str) -> TransportError:
    name = type(exc).__name__
    if isinstance(exc, requests.exceptions.SSLError):
        if any(sign in str(exc).lower() for sign in PLAIN_HTTP_SIGNS):
            parts = urlsplit(url)
            return NotTlsError(
                f"the server at {parts.scheme}://{parts.netloc} answers plain HTTP, not TLS: use http:// in the "
                "endpoint (or check the port)",
                path=path,
            )
        return TlsError(f"TLS verification failed on {method} {path}", path=path)
    if isinstance(exc, requests.Timeout | urllib3.exceptions.TimeoutError | TimeoutError):
        return TransportError(f"timed out on {method} {path} ({name})", path=path)
    return TransportError(f"connection failed or was cut on {method} {path} ({name})", path=path)


def in_clear_text(url: str) -> bool:
    """An ``http://`` URL to anything but this machine (127.0.0.0/8, ::1, localhost)."""
    parts = urlsplit(url)
    if parts.scheme != "http":
        return False
    host = (parts.hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True  # a name: it may resolve anywhere
