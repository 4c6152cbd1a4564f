"""The real spherical-harmonic basis of 3DGS (bands 0..3), shared by the rasterizer, which
evaluates it, and the scene transforms, which rotate coefficients expressed in it."""
from __future__ import annotations

import torch

SH_C0 = 0.28209479177387814
SH_C1 = 0.4886025119029199
SH_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
SH_C3 = (-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154, -0.4570457994644658,
         1.445305721320277, -0.5900435899266435)
#: (first, last + 1) of each band 1..3 within a channel's f_rest coefficients
BAND_SLICES = ((0, 3), (3, 8), (8, 15))


def sh_basis(dirs: torch.Tensor, coeffs: int) -> torch.Tensor:
    """(N, coeffs) real SH basis of bands 1..3 (no band 0) for unit directions (N, 3), in the
    3DGS order the PLY's f_rest coefficients follow."""
    x, y, z = dirs[:, 0], dirs[:, 1], dirs[:, 2]
    cols = [-SH_C1 * y, SH_C1 * z, -SH_C1 * x]
    if coeffs > 3:
        xx, yy, zz = x * x, y * y, z * z
        cols += [SH_C2[0] * x * y, SH_C2[1] * y * z, SH_C2[2] * (2 * zz - xx - yy), SH_C2[3] * x * z,
                 SH_C2[4] * (xx - yy)]
        if coeffs > 8:
            cols += [SH_C3[0] * y * (3 * xx - yy), SH_C3[1] * x * y * z, SH_C3[2] * y * (4 * zz - xx - yy),
                     SH_C3[3] * z * (2 * zz - 3 * xx - 3 * yy), SH_C3[4] * x * (4 * zz - xx - yy),
                     SH_C3[5] * z * (xx - yy), SH_C3[6] * x * (xx - 3 * yy)]
    return torch.stack(cols[:coeffs], 1)
