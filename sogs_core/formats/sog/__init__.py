"""SOG v2 (and reading v1): `codes` (what the images store and its exact inverse), `layout`
(codes <-> RGBA images and meta.json), `package` (the .sog bundle or folder on disk), `read`
(a SOG file set -> Splats, and its stored codes)."""
