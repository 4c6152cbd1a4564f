"""Streamed SOG (levels of detail in chunks): tree -> decimate -> chunk -> meta -> streamed.

`tree` cuts the scene into leaves and groups, `decimate` makes the coarser levels, `chunk`
turns one group into one SOG per level, `meta` writes lod-meta.json, `streamed` runs it all.
"""
from sogs_core.formats.lod_meta.write import META_NAME
from sogs_core.pipeline.streamed.write import StreamedResult, write_streamed
from sogs_core.settings import StreamedSettings
from sogs_core.settings import ChunkOptions

__all__ = ["META_NAME", "ChunkOptions", "StreamedResult", "StreamedSettings", "write_streamed"]
