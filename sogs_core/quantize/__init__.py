"""Quantizing a scene: `scene` (codes of every attribute but the SH palette), `codebook` (the
256-entry 1-D codebooks), `palette/` (the SH palette: fit, k-means, nearest-centroid search,
numbering along the order)."""
