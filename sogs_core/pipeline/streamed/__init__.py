"""Streamed SOG (levels of detail in chunks): tree -> decimate -> chunk -> schedule -> write.

`tree` cuts the scene into leaves and groups, `sogs_core.edit.decimate` (the pair merge that
`--max-splats` uses too) makes the coarser levels, `chunk`
turns one group (or one bucket of a coarse level) into one SOG, `schedule` orders the groups
and buckets, `write` runs it all here (`ray_jobs/streamed.py` spreads it over a Ray cluster);
`sogs_core.formats.lod_meta` writes the index, lod-meta.json.
"""
from sogs_core.formats.lod_meta.write import META_NAME
from sogs_core.pipeline.streamed.write import StreamedResult, write_streamed
from sogs_core.settings import ChunkOptions, StreamedSettings

__all__ = ["META_NAME", "ChunkOptions", "StreamedResult", "StreamedSettings", "write_streamed"]
