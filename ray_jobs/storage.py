"""Where scenes come from and go to: local folders and S3 (`s3://bucket/prefix/`), one interface.

S3 goes through boto3 as it is: it honours the standard AWS variables (credentials, region,
`AWS_ENDPOINT_URL` for S3-compatible stores and the tests' moto server) and retries throttling
and 5xx answers with backoff (botocore's 'adaptive' mode). Listing is paginated, so prefixes with
more than 1000 keys are listed whole. Local files get an ETag of size and mtime, which changes
when the file is rewritten, as an S3 ETag does.
"""
from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass
from typing import Callable, Iterator, Optional
from urllib.parse import urlparse


@dataclass(frozen=True)
class ObjectInfo:
    uri: str        # full URI of the object
    rel: str        # path relative to the listed prefix, '/'-separated
    size: int
    etag: str


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def join(prefix: str, rel: str) -> str:
    return prefix.rstrip("/") + "/" + rel.lstrip("/")


class Store:
    """Read, write, list and delete objects under local paths or s3:// URIs."""

    def __init__(self, max_attempts: int = 8) -> None:
        self.max_attempts = max_attempts
        self._s3 = None

    # -- S3 client, created lazily (a local-only run never imports boto3) ----------------------
    @property
    def s3(self):
        if self._s3 is None:
            import boto3
            from botocore.config import Config

            cfg = Config(retries={"max_attempts": self.max_attempts, "mode": "adaptive"},
                         max_pool_connections=32)
            self._s3 = boto3.session.Session().client("s3", config=cfg)
        return self._s3

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
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key):
            for obj in page.get("Contents", []):
                yield ObjectInfo(f"s3://{bucket}/{obj['Key']}", obj["Key"][len(key):], int(obj["Size"]),
                                 obj["ETag"].strip('"'))

    def _list_local(self, prefix: str) -> Iterator[ObjectInfo]:
        root = os.path.abspath(prefix)
        if not os.path.isdir(root):
            raise FileNotFoundError(f"input folder {prefix} does not exist")
        for dirpath, _, names in os.walk(root):
            for name in names:
                path = os.path.join(dirpath, name)
                st = os.stat(path)
                rel = os.path.relpath(path, root).replace(os.sep, "/")
                yield ObjectInfo(path, rel, st.st_size, f"{st.st_size:x}-{st.st_mtime_ns:x}")

    # -- objects -------------------------------------------------------------------------------
    def get(self, uri: str) -> bytes:
        if is_s3(uri):
            bucket, key = self._split(uri)
            return self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        with open(uri, "rb") as f:
            return f.read()

    def put(self, uri: str, data: bytes) -> None:
        """One PUT on S3; locally a temporary file renamed into place. Either way the object
        appears whole or not at all."""
        if is_s3(uri):
            bucket, key = self._split(uri)
            self.s3.put_object(Bucket=bucket, Key=key, Body=data)
            return
        os.makedirs(os.path.dirname(os.path.abspath(uri)), exist_ok=True)
        tmp = f"{uri}.tmp-{os.getpid()}-{id(data):x}"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, uri)

    def exists(self, uri: str) -> bool:
        if is_s3(uri):
            from botocore.exceptions import ClientError

            bucket, key = self._split(uri)
            try:
                self.s3.head_object(Bucket=bucket, Key=key)
                return True
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                    return False
                raise
        return os.path.exists(uri)

    def delete(self, uri: str) -> None:
        if is_s3(uri):
            bucket, key = self._split(uri)
            self.s3.delete_object(Bucket=bucket, Key=key)
        elif os.path.exists(uri):
            os.remove(uri)

    def list_all(self, prefix: str) -> list[ObjectInfo]:
        """Every object under prefix (no suffix filter); an absent local folder lists empty."""
        if not is_s3(prefix) and not os.path.isdir(prefix):
            return []
        items = self._list_s3(prefix) if is_s3(prefix) else self._list_local(prefix)
        return sorted(items, key=lambda o: o.rel)
