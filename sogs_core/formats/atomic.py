"""Files that appear whole or not at all: written under a temporary name beside the target and
renamed into place, the temporary file removed when the write fails (full disk, denied, killed
mid-way leaves only a dot-file that no reader takes for the output)."""
from __future__ import annotations

import contextlib
import os
import threading
from typing import Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """A temporary path beside `path` to write to; renamed to `path` when the block succeeds,
    removed when it raises."""
    path = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(parent, f".{os.path.basename(path)}.tmp-{os.getpid()}-{threading.get_ident():x}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    """`data` to `path` through `atomic_path`."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
