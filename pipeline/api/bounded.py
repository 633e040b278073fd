"""An HTTP body read within a size limit, as sent and once decompressed, never holding much more than the limit.

requests would inflate a whole body in memory before anyone could look at its size, and a 0.5 MB gzip
answer can expand to 512 MiB (a decompression bomb). Here the body is read raw, in chunks (``stream=True``,
no decoding by urllib3), and the bytes are counted as they arrive; the codings are undone by zlib stages
that each hand on at most one chunk at a time, and the decoded bytes are counted too. The first count over
the limit stops the read: what is held then is at most the limit plus a chunk.

Only the codings asked for are decoded: :data:`ACCEPT_ENCODING` is sent with every request.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Iterator

import requests

from pipeline.errors import ResponseTooLarge, TransportError

CHUNK = 64 * 1024
MIB = 1 << 20
ACCEPT_ENCODING = "gzip, deflate"
_GZIP = frozenset({"gzip", "x-gzip"})


def read_body(response: requests.Response, *, limit_mb: float, method: str, path: str) -> bytes:
    """The whole body of a ``stream=True`` response, decoded; :class:`ResponseTooLarge` past ``limit_mb`` MiB.

    Read errors (a cut connection, a timeout) are urllib3's, for the caller to classify.
    """
    limit = int(limit_mb * MIB)
    header = response.headers.get("Content-Encoding", "")
    codings = [c.strip().lower() for c in header.split(",") if c.strip() and c.strip().lower() != "identity"]
    unknown = [c for c in codings if c not in _GZIP and c != "deflate"]
    if unknown:
        raise TransportError(
            f"undecodable body on {method} {path}: Content-Encoding {header!r} was not asked for "
            f"(Accept-Encoding: {ACCEPT_ENCODING})",
            path=path,
        )

    def too_large(detail: str) -> ResponseTooLarge:
        return ResponseTooLarge(
            f"the answer to {method} {path} is larger than the {limit_mb:g} MiB limit{detail}: raise it with "
            "--max-response-mb (or SWR_ETL_MAX_RESPONSE_MB, or max-response-mb in the config file) "
            "if answers this large are expected",
            path=path,
        )

    declared = response.headers.get("Content-Length", "").strip()
    if declared.isdigit() and int(declared) > limit:
        raise too_large(f" (Content-Length {int(declared)})")

    def received() -> Iterator[bytes]:
        count = 0
        while chunk := response.raw.read(CHUNK, decode_content=False):
            count += len(chunk)
            if count > limit:
                raise too_large("")
            yield chunk

    stream = received()
    for coding in reversed(codings):  # the codings were applied in the order listed
        stream = _inflate(stream, coding, method, path)
    body = io.BytesIO()
    for piece in stream:
        if body.tell() + len(piece) > limit:
            raise too_large(f" once decompressed (Content-Encoding {header})")
        body.write(piece)
    return body.getvalue()  # the buffer itself, not a copy


def _inflate(source: Iterator[bytes], coding: str, method: str, path: str) -> Iterator[bytes]:
    """Undo one gzip or deflate coding, yielding at most :data:`CHUNK` bytes at a time whatever the ratio."""
    gzip = coding in _GZIP
    obj: zlib._Decompress | None = None
    members = 0  # gzip members decoded whole: a body may hold several, one after the other
    for data in _at_least_two_bytes(source):
        if obj is None:
            # "deflate" is zlib-wrapped by the RFC, raw in some servers: the zlib header tells them apart
            wrapped = len(data) < 2 or (data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0)
            obj = zlib.decompressobj(16 + zlib.MAX_WBITS if gzip else zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
        while data and obj is not None:
            if obj.eof:
                if not gzip:
                    break  # bytes after the end of the stream are ignored, as urllib3 ignores them
                obj, members = zlib.decompressobj(16 + zlib.MAX_WBITS), members + 1
            try:
                out = obj.decompress(data, CHUNK)
            except zlib.error as exc:
                if members:  # not a gzip member after a complete one: trailing bytes, ignored likewise
                    obj = None
                    break
                raise TransportError(f"undecodable body on {method} {path} ({coding}: {exc})", path=path) from exc
            data = obj.unconsumed_tail or (obj.unused_data if obj.eof else b"")
            if out:
                yield out
        if obj is None:
            return  # what is left of the body is not read: the caller closes the connection
    if obj is not None and not obj.eof and (tail := obj.flush()):
        yield tail


def _at_least_two_bytes(source: Iterator[bytes]) -> Iterator[bytes]:
    """The same bytes, the first piece at least two long (when there are two): enough to read a zlib header."""
    head = b""
    for data in source:
        head += data
        if len(head) >= 2:
            yield head
            break
    else:
        if head:
            yield head
        return
    yield from source
