"""Choosing the torch device once, so every stage of a Compressor runs on the same one; numpy
arrays as tensors without a copy where torch can share them."""
from __future__ import annotations

import numpy as np
import torch


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' -> the first CUDA GPU if torch sees one, else the CPU; 'cuda' fails loudly without one."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for, but torch sees no CUDA GPU "
                           "(use --device auto or cpu)")
    return dev


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
