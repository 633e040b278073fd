"""Where the lake lives: a local folder, or a bucket of any S3-compatible store (Huawei Cloud OBS, MinIO,
AWS S3), both through pyarrow's filesystems so that the lake is written by one code path.

A location is a path (``/srv/swr/lake``) or ``s3://bucket/prefix``. For S3 the endpoint, region and
credentials come from the environment variables every S3 tool reads, and from nowhere else (never from the
URL, so that they never reach a log line or the warehouse):

    AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL   e.g. https://obs.cn-north-4.myhuaweicloud.com (absent: AWS)
    AWS_REGION or AWS_DEFAULT_REGION          e.g. cn-north-4
    AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN   (or any source of the AWS default chain)
    SWR_ETL_S3_VIRTUAL_HOSTED=true            virtual-hosted requests (default with an endpoint: path-style)

What each store guarantees, and what the lake builds on it (see :mod:`pipeline.load.lakeload`): a local rename
replaces a file atomically; an S3 PUT (or the completion of a multipart upload) replaces an object atomically,
and a read after it sees it (strong read-after-write consistency, which AWS S3 documents; on OBS it is assumed,
not tested). Neither gives an atomic change of several files, so the lake publishes one file at a time, in an
order that keeps readers and the next run right.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pyarrow.fs as pafs

from pipeline.errors import ConfigError
from pipeline.landing import atomic_write

S3_SCHEMES = ("s3", "s3a")
_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter (malloc.h)


def is_remote(location: str) -> bool:
    return urlsplit(location).scheme.lower() in S3_SCHEMES


@dataclass(frozen=True)
class S3Settings:
    """Where an S3 lake's store is, as the environment said when it was opened (never its credentials)."""

    endpoint: str | None = None  # None: AWS
    region: str | None = None
    virtual_hosted: bool = False  # bucket.endpoint/key instead of endpoint/bucket/key


@dataclass(frozen=True)
class LakeStore:
    """A lake's root on its filesystem. Paths handed in and out are relative to :attr:`root`."""

    url: str  # what the user sees in messages and the warehouse's views: an absolute path, or s3://bucket/prefix
    fs: pafs.FileSystem = field(repr=False, compare=False)
    root: str  # the root as the filesystem names it: /abs/path, or bucket/prefix
    s3: S3Settings | None = field(default=None, compare=False)  # for DuckDB's httpfs (warehouse.httpfs)

    @property
    def remote(self) -> bool:
        return not isinstance(self.fs, pafs.LocalFileSystem)

    def path(self, *parts: str) -> str:
        """A path inside the lake, as the filesystem names it."""
        return "/".join([self.root, *parts])

    def uri(self, *parts: str) -> str:
        """A path inside the lake as DuckDB names it: a local path, or ``s3://bucket/...``."""
        return "/".join([self.url, *parts])

    def relative(self, path: str) -> str:
        return path.removeprefix(self.root + "/")

    def files(self, *parts: str, hidden: bool = False) -> list[str]:
        """Every file under a folder of the lake (recursive), relative to the root, sorted; none when absent.
        Names starting with ``.`` or ``_`` (temporary files, staging) are not data and are left out, unless
        ``hidden`` (then only ``.`` names are)."""
        selector = pafs.FileSelector(self.path(*parts), recursive=True, allow_not_found=True)
        skip = (".",) if hidden else (".", "_")
        found = []
        for info in self.fs.get_file_info(selector):
            if info.type != pafs.FileType.File:
                continue
            name = self.relative(info.path)
            if any(p.startswith(skip) for p in name.split("/")[len(parts) :]):
                continue
            found.append(name)
        return sorted(found)

    def exists(self, *parts: str) -> bool:
        return bool(self.fs.get_file_info(self.path(*parts)).type != pafs.FileType.NotFound)

    def read_bytes(self, *parts: str) -> bytes:
        with self.fs.open_input_stream(self.path(*parts)) as stream:
            return bytes(stream.read())

    def write_bytes(self, data: bytes, *parts: str) -> None:
        """Write a whole file so that a reader sees the old one or all of the new one: a temporary file renamed
        into place locally, one PUT on S3."""
        target = self.path(*parts)
        if not self.remote:
            atomic_write(Path(target), data, fsync=True)
            return
        with self.fs.open_output_stream(target) as out:
            out.write(data)

    def move(self, source: str, target: str) -> None:
        """Replace ``target`` by ``source`` (both relative): a rename locally, copy-then-delete on S3 (the
        copy is done by the server and replaces the object atomically)."""
        if not self.remote:
            self.fs.create_dir(self.path(target).rsplit("/", 1)[0], recursive=True)
        self.fs.move(self.path(source), self.path(target))

    def delete(self, *parts: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.delete_file(self.path(*parts))

    def delete_dir(self, *parts: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.delete_dir(self.path(*parts))

    def duckdb_filesystem(self) -> Any:
        """For a remote lake: an fsspec view of the same pyarrow filesystem, for ``register_filesystem``, so that
        DuckDB reads ``s3://`` without its httpfs extension (and with the very same endpoint and credentials)."""
        if not self.remote:
            return None
        from fsspec.implementations.arrow import ArrowFSWrapper

        class _S3(ArrowFSWrapper):  # type: ignore[misc]
            protocol = "s3"
            root_marker = ""

            def _open(self, path: str, mode: str = "rb", *args: Any, **kwargs: Any) -> Any:
                if mode != "rb":
                    return super()._open(path, mode, *args, **kwargs)
                return _SharedReader(self.fs.open_input_file(path))

        return _S3(self.fs)


class _SharedReader:
    """One remote file read by several DuckDB threads at once, which share its handle: each thread has its own
    position, and every read is a positional read (``read_at``), so that no thread reads from where another
    has just seeked to (docs/decisions/0015-positional-reads-for-duckdb-on-s3.md)."""

    def __init__(self, source: Any) -> None:
        self._source = source
        self._size = source.size()
        self._local = threading.local()

    def _pos(self) -> int:
        return int(getattr(self._local, "pos", 0))

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos(), 2: self._size}[whence]
        self._local.pos = base + offset
        return self._local.pos  # type: ignore[no-any-return]

    def tell(self) -> int:
        return self._pos()

    def read(self, nbytes: int = -1) -> bytes:
        pos = self._pos()
        count = self._size - pos if nbytes is None or nbytes < 0 else min(nbytes, self._size - pos)
        if count <= 0:
            return b""
        data = self._source.read_at(count, pos)
        self._local.pos = pos + len(data)
        return bytes(data)

    def size(self) -> int:
        return int(self._size)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def close(self) -> None:
        self._source.close()

    @property
    def closed(self) -> bool:
        return bool(self._source.closed)

    def __enter__(self) -> _SharedReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_store(location: str, environ: dict[str, str] | None = None) -> LakeStore:
    """The lake at ``location``: a local path (made absolute) or ``s3://bucket/prefix``."""
    env = dict(os.environ if environ is None else environ)
    parts = urlsplit(location)
    if parts.scheme.lower() not in S3_SCHEMES:
        if parts.scheme and len(parts.scheme) > 1:  # not a Windows drive letter
            raise ConfigError(f"lake location {location!r}: only local paths and s3://bucket/prefix are supported")
        root = os.path.abspath(location)
        return LakeStore(url=root, fs=pafs.LocalFileSystem(), root=root)
    if parts.username or parts.password or parts.query:
        raise ConfigError(
            "an s3:// lake location takes no credentials or options in the URL: set AWS_ACCESS_KEY_ID, "
            "AWS_SECRET_ACCESS_KEY, AWS_REGION and AWS_ENDPOINT_URL_S3 instead"
        )
    bucket, prefix = parts.netloc, parts.path.strip("/")
    if not bucket:
        raise ConfigError(f"location {location!r} names no bucket: s3://bucket/prefix")
    if any(segment in (".", "..", "") for segment in prefix.split("/")) and prefix:
        raise ConfigError(f"location {location!r}: the prefix may not have empty, '.' or '..' segments")
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None
    options: dict[str, Any] = {
        "connect_timeout": 10,
        "request_timeout": 60,
        "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=6),
        "background_writes": False,
    }
    if endpoint:
        options["endpoint_override"] = endpoint
        options["scheme"] = urlsplit(endpoint).scheme or "https"
    if region:
        options["region"] = region
    virtual = env.get("SWR_ETL_S3_VIRTUAL_HOSTED", "").strip().lower() in ("1", "true", "yes", "on")
    if virtual:
        options["force_virtual_addressing"] = True  # bucket.endpoint/key instead of endpoint/bucket/key
    fs = pafs.S3FileSystem(**options)
    root = f"{bucket}/{prefix}" if prefix else bucket
    return LakeStore(url=f"s3://{root}", fs=fs, root=root, s3=S3Settings(endpoint, region, virtual))


def return_large_frees() -> None:
    """For a load into an S3 lake: glibc hands large blocks (1 MiB and more) back to the system as soon as
    they are freed, instead of keeping them in the arenas of S3's I/O threads; a local lake keeps glibc's
    default, which is faster there (docs/decisions/0006-memory-on-s3-loads.md). Nothing happens off Linux,
    when the C library has no ``mallopt`` (not glibc), or when ``MALLOC_MMAP_THRESHOLD_`` was set."""
    if not sys.platform.startswith("linux") or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (AttributeError, OSError, TypeError):
        return
    mallopt(_M_MMAP_THRESHOLD, 1 << 20)
