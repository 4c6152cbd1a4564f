"""Write 3DGS PLY files (INRIA layout, binary little-endian float32): what `decompress` writes
and what the tests and benchmarks build scenes with. Reading lives in `read.py`.
"""
from __future__ import annotations

import os

import numpy as np

from sogs_core.formats.atomic import atomic_write
from sogs_core.model.splats import Splats


def ply_bytes(splats: Splats) -> bytes:
    """Serialise `Splats` as a binary little-endian float32 3DGS PLY (INRIA property order)."""
    n = splats.count
    names = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    names += [f"f_rest_{i}" for i in range(splats.f_rest.shape[1])]
    names += ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    body = np.concatenate([splats.means, np.zeros((n, 3), np.float32), splats.f_dc, splats.f_rest,
                           splats.opacity[:, None], splats.log_scales, splats.quats], axis=1)
    header = f"ply\nformat binary_little_endian 1.0\nelement vertex {n}\n"
    header += "".join(f"property float {p}\n" for p in names) + "end_header\n"
    return header.encode("ascii") + np.ascontiguousarray(body, dtype="<f4").tobytes()


def write_ply(path: str | os.PathLike, splats: Splats) -> int:
    """Write `splats` to `path` (atomically, via a temporary file); returns bytes written."""
    data = ply_bytes(splats)
    atomic_write(path, data)
    return len(data)
