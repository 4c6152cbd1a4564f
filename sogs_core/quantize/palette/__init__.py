"""The SH palette: `fit` (centroids, their codebook, each splat's label), `kmeans` (Lloyd over the
f_rest rows), the nearest-centroid searches (`exact`, `cells`, `triton_search`), `numbering`
(entries renumbered along the splat order)."""
