"""The compressor: `compressor` (the stages, reusable across scenes), `side_stream` (work beside
the GPU stages on its own thread and stream: the SH palette in `palette_aside`, the render
metric's input renders), `choose_order` (the sampled choice between candidate orders),
`fidelity`, and `streamed/` (one huge scene as a streamed SOG)."""
