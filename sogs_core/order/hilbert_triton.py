"""Hilbert keys as one Triton kernel: every level of Skilling's transform in registers.

Why: `curves.hilbert_keys` in torch ops is ~600 launches (about 15 per level of 21 bits), each a
pass over the scene. On a GPU a file's order is bound by launching, not by those passes: a
streamed SOG orders ~100 files under one lock, a launch each costs more than the work. Same keys
as the torch version, bit for bit (integer ops only; tests run both in Triton's interpreter).
Import fails (ImportError) where Triton is missing; `curves` then uses torch ops.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _spread3(v):
    """Bits 0..20 of int64 v moved to bits 0, 3, 6, ... 60 (as `curves._spread3`)."""
    v = v & 0x1FFFFF
    v = (v | (v << 32)) & 0x1F00000000FFFF
    v = (v | (v << 16)) & 0x1F0000FF0000FF
    v = (v | (v << 8)) & 0x100F00F00F00F00F
    v = (v | (v << 4)) & 0x10C30C30C30C30C3
    return (v | (v << 2)) & 0x1249249249249249


@triton.jit
def _swap_or_invert(x0, xi, k: tl.constexpr):
    """Level k of the excess-work undo for axis i > 0: invert x0's low bits where bit k of xi
    is set, else exchange them with xi's. Returns (x0, xi)."""
    p = (1 << k) - 1
    hit = -((xi >> k) & 1)
    t = ((x0 ^ xi) & p) & ~hit
    return x0 ^ (hit & p) ^ t, xi ^ t


@triton.jit
def _hilbert_kernel(codes_ptr, keys_ptr, n, BITS: tl.constexpr, BLOCK: tl.constexpr):
    """keys[i] = the Hilbert key of codes[i, 0:3] (int64 codes below 2^BITS)."""
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    ok = offs < n
    x0 = tl.load(codes_ptr + offs * 3, mask=ok, other=0).to(tl.int32)
    x1 = tl.load(codes_ptr + offs * 3 + 1, mask=ok, other=0).to(tl.int32)
    x2 = tl.load(codes_ptr + offs * 3 + 2, mask=ok, other=0).to(tl.int32)
    for k in tl.static_range(BITS - 1, 0, -1):
        p = (1 << k) - 1
        x0 = x0 ^ (-((x0 >> k) & 1) & p)
        x0, x1 = _swap_or_invert(x0, x1, k)
        x0, x2 = _swap_or_invert(x0, x2, k)
    x1 = x1 ^ x0
    x2 = x2 ^ x1
    t = x2 >> 1
    for s in tl.static_range(5):                   # shifts 1, 2, 4, 8, 16: enough below 32 bits
        if (1 << s) < BITS:
            t = t ^ (t >> (1 << s))
    k0 = _spread3((x0 ^ t).to(tl.int64))
    k1 = _spread3((x1 ^ t).to(tl.int64))
    k2 = _spread3((x2 ^ t).to(tl.int64))
    tl.store(keys_ptr + offs, (k0 << 2) | (k1 << 1) | k2, mask=ok)


def hilbert_keys(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """(N, 3) int codes below 2^bits, on a CUDA device (or any device in Triton's interpreter)
    -> (N,) int64 keys, as `curves.hilbert_keys`."""
    codes = codes.to(torch.int64).contiguous()
    n = len(codes)
    keys = torch.empty(n, dtype=torch.int64, device=codes.device)
    if n:
        block = 1024
        _hilbert_kernel[(triton.cdiv(n, block),)](codes, keys, n, BITS=bits, BLOCK=block)
    return keys
