"""`lod-meta.json`, the index of a streamed SOG: `write` (the document from the chunk tree and the
files written) and `read` (the index, and one level decoded back to Splats)."""
