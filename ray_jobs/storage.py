"""Where scenes come from and go to: local folders and S3 (`s3://bucket/prefix/`), one interface.

S3 goes through boto3 as it is: it honours the standard AWS variables (credentials, region,
`AWS_ENDPOINT_URL` for S3-compatible stores and the tests' moto server). Transient trouble
(connection errors, timeouts, 5xx, throttling) is retried twice by botocore, then by `retrying`
here with exponential backoff, equal jitter and a cap: waits of 0.5, 1, 2, 4, 8, 16, 16, ... s
(each drawn between half and all of that), until `retry_seconds` (default 120) have passed, so an
outage of a minute or more is ridden out before a scene fails. Listing is paginated, so prefixes
with more than 1000 keys are listed whole. Local files get an ETag of size and mtime, which
changes when the file is rewritten, as an S3 ETag does; a local entry that cannot be a scene
(a symlink loop, a dangling link, a named pipe, an unreadable folder) is listed with its problem
instead of aborting the listing.
"""
from __future__ import annotations

import errno
import fnmatch
import os
import random
import stat
import sys
import time
from dataclasses import dataclass
from typing import Callable, Iterator, Optional, TypeVar
from urllib.parse import urlparse

from sogs_core.formats.atomic import atomic_path, atomic_write

T = TypeVar("T")

#: the retry schedule of `retrying`: first wait, doubling, cap (seconds)
BACKOFF_FIRST, BACKOFF_CAP = 0.5, 16.0
TRANSIENT_CODES = {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "RequestTimeTooSkewed",
                   "InternalError", "ServiceUnavailable", "503", "500", "502", "504"}


def local_etag(st: os.stat_result) -> str:
    """A local file's ETag: size and mtime, which change when it is rewritten (as an S3 ETag does)."""
    return f"{st.st_size:x}-{st.st_mtime_ns:x}"


class InputChanged(Exception):
    """An input rewritten while it was read (retried: the next read sees one version)."""


@dataclass(frozen=True)
class ObjectInfo:
    uri: str        # full URI of the object
    rel: str        # path relative to the listed prefix, '/'-separated
    size: int
    etag: str
    problem: Optional[str] = None   # why this entry cannot be read (local listing only)


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def join(prefix: str, rel: str) -> str:
    return prefix.rstrip("/") + "/" + rel.lstrip("/")


def backoff_schedule(total: float, first: float = BACKOFF_FIRST, cap: float = BACKOFF_CAP) -> list[float]:
    """The longest waits (before jitter) that fit in `total` seconds: first, 2 x first, ... cap."""
    waits, spent, wait = [], 0.0, first
    while spent + wait <= total:
        waits.append(wait)
        spent += wait
        wait = min(cap, wait * 2)
    return waits


def is_transient(exc: BaseException) -> bool:
    """Whether an S3 error may go away by itself (worth waiting for)."""
    from botocore.exceptions import ClientError, ConnectionError as BotoConnectionError, HTTPClientError

    if isinstance(exc, (BotoConnectionError, HTTPClientError)):
        return True
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return err.get("Code") in TRANSIENT_CODES or status >= 500 or status == 429
    return False


def retrying(fn: Callable[[], T], retry_seconds: float, what: str = "S3 request",
             sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> T:
    """fn(), retried on transient errors by the module's backoff until retry_seconds have passed;
    then the last error is raised."""
    deadline = clock() + retry_seconds
    wait = BACKOFF_FIRST
    while True:
        try:
            return fn()
        except Exception as exc:
            if not is_transient(exc):
                raise
            pause = wait / 2 + random.uniform(0, wait / 2)
            if clock() + pause > deadline:
                raise
            print(f"[storage] {what}: {type(exc).__name__}: {str(exc)[:200]}; retrying in {pause:.1f}s",
                  file=sys.stderr, flush=True)
            sleep(pause)
            wait = min(BACKOFF_CAP, wait * 2)


class Store:
    """Read, write, list and delete objects under local paths or s3:// URIs."""

    def __init__(self, retry_seconds: float = 120.0) -> None:
        self.retry_seconds = retry_seconds
        self._s3 = None

    # -- S3 client, created lazily (a local-only run never imports boto3) ----------------------
    @property
    def s3(self):
        if self._s3 is None:
            import boto3
            from botocore.config import Config

            cfg = Config(retries={"max_attempts": 3, "mode": "standard"}, max_pool_connections=32,
                         connect_timeout=10, read_timeout=60)
            self._s3 = boto3.session.Session().client("s3", config=cfg)
        return self._s3

    def _call(self, fn: Callable[[], T], what: str) -> T:
        return retrying(fn, self.retry_seconds, what)

    @staticmethod
    def _split(uri: str) -> tuple[str, str]:
        p = urlparse(uri)
        return p.netloc, p.path.lstrip("/")

    # -- listing -------------------------------------------------------------------------------
    def list(self, prefix: str, accept: Optional[Callable[[str], bool]] = None,
             include: Optional[list[str]] = None, exclude: Optional[list[str]] = None) -> list[ObjectInfo]:
        """Every object under `prefix` whose relative path `accept` takes (default: all), filtered
        by include/exclude globs on the relative path; sorted by relative path."""
        items = self._list_s3(prefix) if is_s3(prefix) else self._list_local(prefix)
        out = []
        for it in items:
            if accept is not None and not accept(it.rel):
                continue
            if include and not any(fnmatch.fnmatch(it.rel, g) for g in include):
                continue
            if exclude and any(fnmatch.fnmatch(it.rel, g) for g in exclude):
                continue
            out.append(it)
        return sorted(out, key=lambda o: o.rel)

    def _list_s3(self, prefix: str) -> Iterator[ObjectInfo]:
        bucket, key = self._split(prefix)
        if key and not key.endswith("/"):
            key += "/"
        token = None
        while True:
            kwargs = {"Bucket": bucket, "Prefix": key, **({"ContinuationToken": token} if token else {})}
            page = self._call(lambda: self.s3.list_objects_v2(**kwargs), f"listing {prefix}")
            for obj in page.get("Contents", []):
                yield ObjectInfo(f"s3://{bucket}/{obj['Key']}", obj["Key"][len(key):], int(obj["Size"]),
                                 obj["ETag"].strip('"'))
            if not page.get("IsTruncated"):
                return
            token = page["NextContinuationToken"]

    def _list_local(self, prefix: str) -> Iterator[ObjectInfo]:
        root = os.path.abspath(prefix)
        if not os.path.isdir(root):
            raise FileNotFoundError(f"input folder {prefix} does not exist")
        unreadable: list[OSError] = []
        for dirpath, _, names in os.walk(root, onerror=unreadable.append):
            for name in names:
                path = os.path.join(dirpath, name)
                rel = os.path.relpath(path, root).replace(os.sep, "/")
                yield self._local_entry(path, rel)
        for exc in unreadable:
            path = exc.filename or root
            rel = os.path.relpath(path, root).replace(os.sep, "/") + "/"
            yield ObjectInfo(path, rel, 0, "", f"cannot list this folder: {exc.strerror or exc}")

    @staticmethod
    def _local_entry(path: str, rel: str) -> ObjectInfo:
        try:
            st = os.stat(path)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                problem = "symlink loop"
            elif exc.errno == errno.ENOENT and os.path.islink(path):
                problem = f"dangling symlink (to {os.readlink(path)})"
            else:
                problem = f"cannot stat: {exc.strerror or exc}"
            return ObjectInfo(path, rel, 0, "", problem)
        if not stat.S_ISREG(st.st_mode):
            kind = ("named pipe" if stat.S_ISFIFO(st.st_mode) else "socket" if stat.S_ISSOCK(st.st_mode)
                    else "device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "not a file")
            return ObjectInfo(path, rel, 0, "", f"not a regular file ({kind})")
        return ObjectInfo(path, rel, st.st_size, local_etag(st))

    # -- objects -------------------------------------------------------------------------------
    def get(self, uri: str) -> bytes:
        if is_s3(uri):
            bucket, key = self._split(uri)
            return self._call(lambda: self.s3.get_object(Bucket=bucket, Key=key)["Body"].read(), f"reading {uri}")
        if not stat.S_ISREG(os.stat(uri).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", uri)
        with open(uri, "rb") as f:
            return f.read()

    def get_versioned(self, uri: str) -> tuple[bytes, str]:
        """(bytes, the ETag of exactly those bytes, in the listing's form): an S3 object's ETag
        comes with the same GET; a local file is stat-ed before and after the read on its open
        descriptor, and a file rewritten meanwhile raises a retryable error. Missing: as `get`."""
        if is_s3(uri):
            bucket, key = self._split(uri)
            obj = self._call(lambda: self.s3.get_object(Bucket=bucket, Key=key), f"reading {uri}")
            return obj["Body"].read(), obj["ETag"].strip('"')
        if not stat.S_ISREG(os.stat(uri).st_mode):        # before opening: a named pipe would block
            raise OSError(errno.EINVAL, "not a regular file", uri)
        with open(uri, "rb") as f:
            before = os.fstat(f.fileno())
            data = f.read()
            after = os.fstat(f.fileno())
        if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns) or len(data) != after.st_size:
            raise InputChanged(f"{uri}: the file changed while it was read; read again")
        return data, local_etag(after)

    def head(self, uri: str, size: int) -> bytes:
        """The first `size` bytes of an object (one ranged GET on S3): a PLY header, say."""
        if is_s3(uri):
            bucket, key = self._split(uri)
            return self._call(lambda: self.s3.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{size - 1}")
                              ["Body"].read(), f"reading the start of {uri}")
        with open(uri, "rb") as f:
            return f.read(size)

    def download(self, uri: str, path: str) -> None:
        """An object to a local file, streamed (a scene too large to hold in memory), written
        under a temporary name and renamed into place."""
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        bucket, key = self._split(uri)
        with atomic_path(path) as tmp:
            self._call(lambda: self.s3.download_file(bucket, key, tmp), f"downloading {uri}")

    def get_with_etag(self, uri: str) -> Optional[tuple[bytes, str]]:
        """(bytes, ETag) of an object, None when absent."""
        if is_s3(uri):
            from botocore.exceptions import ClientError

            bucket, key = self._split(uri)
            try:
                obj = self._call(lambda: self.s3.get_object(Bucket=bucket, Key=key), f"reading {uri}")
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                    return None
                raise
            return obj["Body"].read(), obj["ETag"]
        try:
            if not stat.S_ISREG(os.stat(uri).st_mode):
                raise OSError(errno.EINVAL, "not a regular file", uri)
            with open(uri, "rb") as f:
                data = f.read()
            st = os.stat(uri)
        except FileNotFoundError:
            return None
        return data, f"{st.st_size:x}-{st.st_mtime_ns:x}-{st.st_ino:x}"

    def put(self, uri: str, data: bytes) -> None:
        """One PUT on S3; locally a temporary file renamed into place (removed if the write
        fails). Either way the object appears whole or not at all."""
        if is_s3(uri):
            bucket, key = self._split(uri)
            self._call(lambda: self.s3.put_object(Bucket=bucket, Key=key, Body=data), f"writing {uri}")
            return
        os.makedirs(os.path.dirname(os.path.abspath(uri)), exist_ok=True)
        atomic_write(uri, data)

    def put_if_absent(self, uri: str, data: bytes) -> bool:
        """Create the object only if nothing is there (S3 conditional write, If-None-Match: *;
        locally an exclusive create). True when created."""
        if is_s3(uri):
            from botocore.exceptions import ClientError

            bucket, key = self._split(uri)
            try:
                self._call(lambda: self.s3.put_object(Bucket=bucket, Key=key, Body=data, IfNoneMatch="*"),
                           f"creating {uri}")
                return True
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict"):
                    return False
                raise
        os.makedirs(os.path.dirname(os.path.abspath(uri)), exist_ok=True)
        try:
            fd = os.open(uri, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        try:
            os.write(fd, data)
        except OSError:
            os.close(fd)
            os.unlink(uri)          # an empty lease would read as unreadable to every other run
            raise
        os.close(fd)
        return True

    def put_if_match(self, uri: str, data: bytes, etag: str) -> bool:
        """Replace the object only if it is still the version `etag` names. True when replaced."""
        if is_s3(uri):
            from botocore.exceptions import ClientError

            bucket, key = self._split(uri)
            try:
                self._call(lambda: self.s3.put_object(Bucket=bucket, Key=key, Body=data, IfMatch=etag),
                           f"replacing {uri}")
                return True
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict",
                                                                 "NoSuchKey", "404"):
                    return False
                raise
        current = self.get_with_etag(uri)
        if current is None or current[1] != etag:
            return False
        atomic_write(uri, data)
        return True

    def exists(self, uri: str) -> bool:
        if is_s3(uri):
            from botocore.exceptions import ClientError

            bucket, key = self._split(uri)
            try:
                self._call(lambda: self.s3.head_object(Bucket=bucket, Key=key), f"checking {uri}")
                return True
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                    return False
                raise
        return os.path.exists(uri)

    def delete(self, uri: str) -> None:
        if is_s3(uri):
            bucket, key = self._split(uri)
            self._call(lambda: self.s3.delete_object(Bucket=bucket, Key=key), f"deleting {uri}")
        elif os.path.exists(uri):
            os.remove(uri)

    def list_all(self, prefix: str) -> list[ObjectInfo]:
        """Every object under prefix (no suffix filter); an absent local folder lists empty."""
        if not is_s3(prefix) and not os.path.isdir(prefix):
            return []
        items = self._list_s3(prefix) if is_s3(prefix) else self._list_local(prefix)
        return sorted(items, key=lambda o: o.rel)

    def check_writable(self, prefix: str, tag: str) -> Optional[str]:
        """Write and delete a small probe object under prefix; None when that works, else why not."""
        probe = join(prefix, f"_write_probe-{tag}")
        try:
            self.put(probe, b"probe")
            self.delete(probe)
        except Exception as exc:
            return f"cannot write under {prefix}: {getattr(exc, 'strerror', None) or exc}"
        return None
