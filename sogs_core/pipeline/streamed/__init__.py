"""Streamed SOG (levels of detail in chunks): plan -> decimate -> chunk -> schedule -> units -> write.

`plan` opens the inputs and cuts the scene into leaves and groups (`tree`),
`sogs_core.edit.decimate` (the pair merge that `--max-splats` uses too) makes the coarser levels,
`chunk` turns one group (or one bucket of a coarse level) into one SOG, `schedule` orders the
groups and buckets, `units` runs them in this process (`processes`: in several on one device),
`write` does it all here (`ray_jobs/streamed.py` spreads the units over a Ray cluster);
`sogs_core.formats.lod_meta` writes the index, lod-meta.json.
"""
from sogs_core.formats.lod_meta.write import META_NAME
from sogs_core.pipeline.streamed.write import StreamedResult, write_streamed
from sogs_core.settings import ChunkOptions, StreamedSettings

__all__ = ["META_NAME", "ChunkOptions", "StreamedResult", "StreamedSettings", "write_streamed"]
