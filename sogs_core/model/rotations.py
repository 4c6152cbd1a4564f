"""Rotation matrices and products of the splats' quaternions, shared by the merge, the
rasterizer and the rotation spelling."""
from __future__ import annotations

import torch


def rotation_entries(q: torch.Tensor) -> tuple[tuple[torch.Tensor, ...], ...]:
    """(N, 4) quaternions w, x, y, z (any length) -> the rotation matrices' entries, rows of
    (N,) tensors: for code that works entry by entry (the merge's covariances) and for
    `quat_to_matrix` alike."""
    q = q / q.norm(dim=1, keepdim=True).clamp_min(1e-12)
    w, x, y, z = q.unbind(1)
    return ((1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)),
            (2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)),
            (2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)))


def quat_to_matrix(q: torch.Tensor) -> torch.Tensor:
    """(N, 4) quaternions w, x, y, z (any length) -> (N, 3, 3) rotation matrices."""
    return torch.stack([e for row in rotation_entries(q) for e in row], 1).reshape(-1, 3, 3)


def quat_mul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Hamilton product of (..., 4) quaternions w, x, y, z (R(a x b) = R(a) R(b))."""
    w1, x1, y1, z1 = a.unbind(-1)
    w2, x2, y2, z2 = b.unbind(-1)
    return torch.stack([w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2, w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
                        w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2, w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2], -1)
