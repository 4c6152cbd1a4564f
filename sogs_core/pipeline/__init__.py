"""The compressor: `compressor` (the stages, reusable across scenes), `palette_aside` (the SH
palette fitted beside the other GPU stages), `choose_order` (the sampled choice between candidate
orders), `fidelity`, and `streamed/` (one huge scene as a streamed SOG)."""
