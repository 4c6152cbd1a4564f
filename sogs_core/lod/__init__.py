"""Streamed SOG (levels of detail in chunks): tree -> decimate -> chunk -> meta -> streamed.

`tree` cuts the scene into leaves and groups, `decimate` makes the coarser levels, `chunk`
turns one group into one SOG per level, `meta` writes lod-meta.json, `streamed` runs it all.
"""
from .meta import META_NAME
from .streamed import StreamedResult, StreamedSettings, write_streamed
from .tree import ChunkOptions

__all__ = ["META_NAME", "ChunkOptions", "StreamedResult", "StreamedSettings", "write_streamed"]
