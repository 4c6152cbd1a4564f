"""The in-memory scene: one float32 array per Gaussian attribute.

Every stage of the pipeline (read -> sort -> quantize -> encode -> write) passes this around, and
the decoder produces it back, so fidelity is always measured between two `Splats`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: number of f_rest coefficients per colour channel for SH degree 0..3
SH_COEFFS_PER_CHANNEL = (0, 3, 8, 15)
#: the per-splat arrays of `Splats`, in field order
ATTRIBUTES = ("means", "quats", "log_scales", "f_dc", "opacity", "f_rest")


def sh_degree_for_rest(n_rest: int) -> int:
    """SH degree from the number of `f_rest_*` properties (0, 9, 24 or 45)."""
    per_channel = n_rest // 3
    if n_rest % 3 or per_channel not in SH_COEFFS_PER_CHANNEL:
        raise ValueError(f"{n_rest} f_rest properties do not match SH degree 0..3 (0, 9, 24 or 45)")
    return SH_COEFFS_PER_CHANNEL.index(per_channel)


@dataclass
class Splats:
    """N Gaussians in the INRIA 3DGS parameterisation (all float32, row i is splat i).

    means: (N, 3) positions; quats: (N, 4) rotation w, x, y, z (not necessarily unit);
    log_scales: (N, 3); f_dc: (N, 3) SH band 0; opacity: (N,) logit;
    f_rest: (N, 3 * K) higher SH bands, channel-major as in the PLY (all R, then G, then B).
    """

    means: np.ndarray
    quats: np.ndarray
    log_scales: np.ndarray
    f_dc: np.ndarray
    opacity: np.ndarray
    f_rest: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))

    def __post_init__(self) -> None:
        n = len(self.means)
        if self.f_rest.size == 0:
            self.f_rest = np.zeros((n, 0), np.float32)
        for name in ATTRIBUTES:
            arr = getattr(self, name)
            if len(arr) != n:
                raise ValueError(f"{name} has {len(arr)} rows, expected {n}")

    @property
    def count(self) -> int:
        return len(self.means)

    @property
    def sh_degree(self) -> int:
        return sh_degree_for_rest(self.f_rest.shape[1])

    @property
    def sh_coeffs(self) -> int:
        """Coefficients per colour channel in f_rest (K = 0, 3, 8 or 15)."""
        return self.f_rest.shape[1] // 3

    def take(self, index: np.ndarray) -> "Splats":
        """A new scene holding the splats at `index`, in that order."""
        return Splats(*(getattr(self, k)[index] for k in ATTRIBUTES))

    @staticmethod
    def concat(parts: list["Splats"]) -> "Splats":
        """The splats of `parts`, one after another (all with the same SH degree)."""
        return Splats(*(np.concatenate([getattr(p, k) for p in parts]) for k in ATTRIBUTES))

    def with_sh_degree(self, degree: int) -> "Splats":
        """Drop SH bands above `degree` (never adds bands)."""
        k_new = SH_COEFFS_PER_CHANNEL[degree]
        k_old = self.sh_coeffs
        if k_new >= k_old:
            return self
        rest = self.f_rest.reshape(self.count, 3, k_old)[:, :, :k_new].reshape(self.count, 3 * k_new)
        return Splats(self.means, self.quats, self.log_scales, self.f_dc, self.opacity,
                      np.ascontiguousarray(rest))
