"""Sorting float32 values with the permutation that sorts them, fast on a CPU.

Why not torch.sort on a CPU: the codebook fits sort every scale and colour value of a scene with
its permutation (3 values a splat, twice), and torch's float64 sort with indices was the largest
single step of a file's quantization. On a CPU each value and its index are packed into one
uint64 (the float's bits mapped to an unsigned key that orders as the floats do, above the
index) and numpy sorts those plain integers, several times faster. Equal values come out in
index order (a stable sort), the same on every machine; the sorted values are the input's exactly.
"""
from __future__ import annotations

import numpy as np
import torch

#: the packed sort holds an index in 32 bits
_PACKED_MAX = 1 << 32
_SIGN = np.uint32(0x80000000)


def float_order_keys(values: np.ndarray) -> np.ndarray:
    """(N,) uint32 keys of float32 values that sort as the values do: negative floats with every
    bit flipped, the others with the sign bit set (-0.0 just below +0.0, NaNs at the ends)."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    return np.where(bits & _SIGN, ~bits, bits | _SIGN)


def sort_with_order(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(the values flattened and sorted, as float64; the int64 permutation with
    values.reshape(-1)[perm] == sorted). Float32 values on a CPU take the packed integer sort
    (equal values in index order); other dtypes and devices torch.sort."""
    flat = values.reshape(-1)
    if flat.is_cuda or flat.dtype != torch.float32 or len(flat) >= _PACKED_MAX:
        return torch.sort(flat.to(torch.float64))
    arr = flat.detach().numpy()
    packed = float_order_keys(arr).astype(np.uint64) << np.uint64(32)
    packed |= np.arange(len(arr), dtype=np.uint64)
    packed.sort()
    perm = (packed & np.uint64(0xFFFFFFFF)).astype(np.int64)
    return torch.from_numpy(arr[perm].astype(np.float64)), torch.from_numpy(perm)
