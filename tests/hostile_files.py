"""Hostile and broken scene files, built in memory: the tests of `test_hostile_inputs.py` and
`bench/hostile_run.py` (which runs a mix of them through the CLI and the backfill) share them."""
from __future__ import annotations

import gzip
import io
import json
import os
import struct
import zipfile

import numpy as np

from sogs_core.formats.ply.write import ply_bytes

from .conftest import make_scene
from .format_writers import ksplat_bytes, spz_v2_bytes


def sog_bundle(meta: dict, entries: dict[str, bytes], deflate: bool = False) -> bytes:
    """A .sog ZIP of `meta` and `entries`, stored or deflated."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED) as z:
        z.writestr("meta.json", json.dumps(meta))
        for name, data in entries.items():
            z.writestr(name, data)
    return buf.getvalue()


def small_sog(count: int = 10) -> tuple[dict, dict[str, bytes]]:
    """(meta, files) of a valid SOG of `count` splats."""
    from sogs_core.pipeline.compressor import Compressor

    pkg = Compressor(device="cpu", warm=False).encode(make_scene(count, 0, seed=5), {}, with_fidelity=False)[0]
    return pkg.meta, dict(pkg.files)


def zip_bomb_sog(inflated: int = 40 << 20) -> bytes:
    """A .sog whose means_l.webp entry inflates to `inflated` bytes of zeros (a few kB deflated)."""
    meta, files = small_sog()
    files["means_l.webp"] = bytes(inflated)
    return sog_bundle(meta, files, deflate=True)


def wide_webp_folder(folder: str, side: int = 300) -> None:
    """A SOG folder of 10 splats whose scales.webp declares side x side texels."""
    from PIL import Image

    meta, files = small_sog()
    big = io.BytesIO()
    Image.fromarray(np.zeros((side, side, 4), np.uint8), "RGBA").save(big, format="WEBP", lossless=True)
    files["scales.webp"] = big.getvalue()
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "meta.json"), "w") as f:
        json.dump(meta, f)
    for name, data in files.items():
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data)


def ksplat_huge_bucket() -> bytes:
    """A .ksplat (mode 1) whose first section claims buckets of 2^28 splats."""
    data = bytearray(ksplat_bytes(make_scene(500, 0, seed=8), 1))
    struct.pack_into("<I", data, 4096 + 8, 1 << 28)
    return bytes(data)


def nan_ply() -> bytes:
    """A PLY with NaN colours and infinite scales in a few splats."""
    s = make_scene(600, 0, seed=9)
    s.f_dc[[3, 40]] = np.nan
    s.log_scales[[7, 300], 1] = np.inf
    return ply_bytes(s)


def truncated_ply() -> bytes:
    return ply_bytes(make_scene(600, 0, seed=10))[:-3000]


def spz_with_leftover() -> bytes:
    """A gzip SPZ with a megabyte of zeros after the data its header's count needs."""
    return gzip.compress(gzip.decompress(spz_v2_bytes(make_scene(300, 0, seed=11))) + bytes(1 << 20))


def spz_claiming(count: int = 2_000_000_000) -> bytes:
    """A gzip SPZ whose 16-byte header claims `count` splats and holds none."""
    head = bytearray(gzip.decompress(spz_v2_bytes(make_scene(10, 0, seed=12)))[:16])
    struct.pack_into("<I", head, 8, count)
    return gzip.compress(bytes(head))
