"""Bytes of one input file, from a path or from memory, and the name its errors carry.

Every reader takes what `load` returns, so a scene fetched from S3 (bytes) and a local file
(path) go through the same checks and give the same messages.
"""
from __future__ import annotations

import os
from typing import Union

from sogs_core.model.errors import SplatFileError

Source = Union[str, os.PathLike, bytes, bytearray, memoryview]


def load(source: Source, name: str | None = None, error=SplatFileError) -> tuple[memoryview, str]:
    """(the file's bytes, the name to put in messages); a path that cannot be opened raises
    `error` (a `SplatFileError` type) naming it."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return memoryview(source), name or "<bytes>"
    path = os.fspath(source)
    try:
        with open(path, "rb") as f:
            return memoryview(f.read()), name or path
    except FileNotFoundError:
        raise error(name or path, "no such file or folder") from None
    except OSError as exc:
        raise error(name or path, f"cannot open: {exc.strerror or exc}") from None
