"""Choosing the device and asking PyTorch's CUDA allocator for expandable segments (a user's own
allocator setting always wins); the C allocator keeping freed host blocks."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from sogs_core.model import device


@pytest.mark.parametrize("variable", device.ALLOCATOR_VARIABLES)
def test_users_allocator_setting_is_kept(monkeypatch, variable):
    for v in device.ALLOCATOR_VARIABLES:
        monkeypatch.delenv(v, raising=False)
    monkeypatch.setenv(variable, "max_split_size_mb:128")
    assert device.prefer_expandable_segments() is False
    assert device.os.environ[variable] == "max_split_size_mb:128"
    assert sum(v in device.os.environ for v in device.ALLOCATOR_VARIABLES) == 1


def test_expandable_segments_asked_for_where_unset(monkeypatch):
    for v in device.ALLOCATOR_VARIABLES:
        monkeypatch.delenv(v, raising=False)
    assert device.prefer_expandable_segments() is True
    assert device.os.environ["PYTORCH_CUDA_ALLOC_CONF"] == device.ALLOCATOR_SETTINGS
    assert device.prefer_expandable_segments() is False          # set once; the second call keeps it


def test_cuda_refused_without_a_gpu():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(RuntimeError, match="--device cuda"):
        device.resolve_device("cuda")
    assert device.resolve_device("auto").type == "cpu"


_MAPPED_APART = """
import ctypes, sys
import numpy as np
from sogs_core.model.host_memory import keep_freed_blocks

class Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Mallinfo2
kept = keep_freed_blocks() if sys.argv[1] == "keep" else None
block = np.ones(16 << 20, np.float32)      # 64 MiB: above glibc's own largest mmap threshold
held = libc.mallinfo2().hblkhd             # bytes in blocks mapped apart from the heap
del block
print(kept, held, libc.mallinfo2().fordblks)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_blocks_stay_in_the_heap():
    """With the thresholds raised, a 64 MiB block comes from the heap and stays there free once
    released (the next one reuses it); without, glibc maps it apart and unmaps it on free."""
    def run(mode: str) -> tuple[str, int, int]:
        out = subprocess.run([sys.executable, "-c", _MAPPED_APART, mode], capture_output=True,
                             text=True, check=True).stdout.split()
        return out[0], int(out[1]), int(out[2])

    kept, mapped_apart, free_in_heap = run("keep")
    _, plain_apart, plain_free = run("plain")
    assert kept == "True"
    assert plain_apart >= 64 << 20 and plain_free < 64 << 20
    assert mapped_apart < 64 << 20 and free_in_heap >= 64 << 20


def test_keep_freed_blocks_answers_once():
    from sogs_core.model import host_memory

    first = host_memory.keep_freed_blocks()
    assert host_memory.keep_freed_blocks() is first
