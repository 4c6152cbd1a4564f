"""Choosing the torch device once, so every stage of a Compressor runs on the same one; numpy
arrays as tensors without a copy where torch can share them."""
from __future__ import annotations

import os

import numpy as np
import torch

#: PyTorch's CUDA allocator setting asked for unless the user chose one: segments that grow in
#: place strand fewer cached blocks, which set a streamed SOG's device peak (bench/NOTES.md,
#: session 26) at no cost in time
ALLOCATOR_SETTINGS = "expandable_segments:True"
ALLOCATOR_VARIABLES = ("PYTORCH_CUDA_ALLOC_CONF", "PYTORCH_ALLOC_CONF")


def prefer_expandable_segments() -> bool:
    """Ask for ALLOCATOR_SETTINGS where neither allocator variable is set; it takes effect if this
    process has not allocated on a GPU yet (and in the processes it starts). Returns whether it
    was set here."""
    if any(v in os.environ for v in ALLOCATOR_VARIABLES):
        return False
    os.environ[ALLOCATOR_VARIABLES[0]] = ALLOCATOR_SETTINGS
    return True


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' -> the first CUDA GPU if torch sees one, else the CPU; 'cuda' fails loudly without one."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for, but torch sees no CUDA GPU "
                           "(use --device auto or cpu)")
    return dev


def cuda_index(dev: torch.device) -> int:
    """The index of CUDA device `dev` ("cuda" alone names none: the current device's)."""
    return dev.index if dev.index is not None else torch.cuda.current_device()


def device_label(dev: torch.device) -> str:
    """Human name of the device, for logs and the manifest's gpu column."""
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return "cpu"


def numpy_tensor(a: np.ndarray) -> torch.Tensor:
    """A CPU tensor over a numpy array, copied only when torch cannot share it (read-only arrays,
    such as images decoded by Pillow, or non-contiguous ones)."""
    if not a.flags.writeable or not a.flags.c_contiguous:
        a = np.array(a, order="C")
    return torch.from_numpy(a)
