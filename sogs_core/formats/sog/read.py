"""SOG as an input and the decoder: v2 (bundle or folder) and the legacy v1 layout -> `Splats`.

v2 inverts the codes (`sog.codes`) and the layout (`sog.layout`) exactly. v1 (PlayCanvas
`sogs` 1.0.0: no `version` key) stores scales, colours and opacity linearly between per-channel
mins/maxs, and the SH palette between one scalar min/max; reading it lets a bucket of old
outputs be upgraded to v2.

A v2 input also gives its stored codes (`codes_v2`): re-compressing it keeps every byte of every
attribute and its codebooks, and changes only the order and the WebP encoding, so a SOG made by
another tool is never degraded a second time.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from sogs_core.model.errors import SogFormatError
from sogs_core.formats.sog.codes import QuantizedScene, decode_means, decode_quats, dequantize
from sogs_core.formats.sog.package import load_bundle_bytes, load_files
from sogs_core.formats.sog.layout import check_meta_v2
from sogs_core.model.splats import SH_COEFFS_PER_CHANNEL, Splats
from sogs_core.formats.sog.limits import CENTROID_TEXELS, per_splat_texels
from sogs_core.webp.codec import decode_webp
from sogs_core.formats.checks import finish, need_count

V1_BANDS_BY_WIDTH = {64 * 3: 1, 64 * 8: 2, 64 * 15: 3}


def _per_splat(files: dict[str, bytes], name: str, count: int, label: str) -> np.ndarray:
    img = decode_webp(files[name], f"{label}:{name}", per_splat_texels(count))
    flat = img.reshape(-1, 4)
    if len(flat) < count:
        raise SogFormatError(label, f"{name} holds {len(flat)} texels, fewer than count {count}")
    return flat[:count]


def _means_codes(files, meta, count, label) -> np.ndarray:
    lo = _per_splat(files, meta["means"]["files"][0], count, label).astype(np.int32)
    hi = _per_splat(files, meta["means"]["files"][1], count, label).astype(np.int32)
    return lo[:, :3] | (hi[:, :3] << 8)


def _means(files, meta, count, label) -> np.ndarray:
    return decode_means(_means_codes(files, meta, count, label), meta["means"]["mins"], meta["means"]["maxs"])


def _sh_codes(files, meta, count, label, bands: int) -> tuple[np.ndarray, np.ndarray]:
    """(labels (N,), palette (P, K, 3) codebook indices) of the SH images."""
    k = SH_COEFFS_PER_CHANNEL[bands]
    cent = decode_webp(files[meta["shN"]["files"][0]], f"{label}:centroids", CENTROID_TEXELS)
    labels_img = _per_splat(files, meta["shN"]["files"][1], count, label).astype(np.int64)
    labels = labels_img[:, 0] | (labels_img[:, 1] << 8)
    ch, cw = cent.shape[:2]
    if cw % k:
        raise SogFormatError(label, f"shN_centroids width {cw} is not a multiple of {k}")
    per_row = cw // k
    palette = cent.reshape(ch * per_row, k, 4)[:, :, :3]          # (P, K, RGB) codebook indices
    if labels.max(initial=0) >= len(palette):
        raise SogFormatError(label, "shN label points past the palette")
    return labels, palette


def _sh_rest(files, meta, count, label, bands: int, dequant) -> np.ndarray:
    labels, palette = _sh_codes(files, meta, count, label, bands)
    k = palette.shape[1]
    vals = dequant(palette[labels])                                 # (N, K, 3)
    return np.ascontiguousarray(vals.transpose(0, 2, 1).reshape(count, 3 * k), dtype=np.float32)


def codes_v2(meta: dict, files: dict[str, bytes], label: str) -> QuantizedScene:
    """The bytes a v2 SOG stores, with its codebooks and palette, splats in the file's order."""
    check_meta_v2(meta, label)
    count = int(meta["count"])
    need_count(label, count)
    quats = _per_splat(files, meta["quats"]["files"][0], count, label)
    scales = _per_splat(files, meta["scales"]["files"][0], count, label)
    sh0 = _per_splat(files, meta["sh0"]["files"][0], count, label)
    q = QuantizedScene(
        count=count, means_q=_means_codes(files, meta, count, label),
        means_mins=[float(v) for v in meta["means"]["mins"]], means_maxs=[float(v) for v in meta["means"]["maxs"]],
        quats_b=np.ascontiguousarray(quats), scales_idx=np.ascontiguousarray(scales[:, :3]),
        scales_codebook=np.asarray(meta["scales"]["codebook"], np.float32),
        sh0_idx=np.ascontiguousarray(sh0[:, :3]), sh0_codebook=np.asarray(meta["sh0"]["codebook"], np.float32),
        opacity_b=np.ascontiguousarray(sh0[:, 3]))
    if "shN" in meta:
        bands = int(meta["shN"]["bands"])
        labels, palette = _sh_codes(files, meta, count, label, bands)
        stated = meta["shN"].get("count")
        p = int(stated) if isinstance(stated, int) and labels.max(initial=0) < stated <= len(palette) else len(palette)
        q = replace(q, sh_bands=bands, sh_labels=labels,
                    sh_palette_idx=np.ascontiguousarray(palette[:p].transpose(0, 2, 1)),   # (P, 3, K)
                    sh_codebook=np.asarray(meta["shN"]["codebook"], np.float32), sh_palette_count=p)
    return q


def decode_v2(meta: dict, files: dict[str, bytes], label: str) -> Splats:
    return finish(dequantize(codes_v2(meta, files, label)), label, SogFormatError)


def decode_v1(meta: dict, files: dict[str, bytes], label: str) -> Splats:
    try:
        count = int(meta["means"]["shape"][0])
        need_count(label, count)

        def linear(section: str, img: np.ndarray, channels: int) -> np.ndarray:
            lo = np.asarray(meta[section]["mins"], np.float64)[:channels]
            hi = np.asarray(meta[section]["maxs"], np.float64)[:channels]
            return (lo + (hi - lo) * img[:, :channels] / 255.0).astype(np.float32)

        means = _means(files, meta, count, label)
        quats = decode_quats(_per_splat(files, meta["quats"]["files"][0], count, label))
        log_scales = linear("scales", _per_splat(files, meta["scales"]["files"][0], count, label), 3)
        sh0 = linear("sh0", _per_splat(files, meta["sh0"]["files"][0], count, label), 4)
        f_rest = np.zeros((count, 0), np.float32)
        if "shN" in meta:
            cent_w = decode_webp(files[meta["shN"]["files"][0]], f"{label}:centroids", CENTROID_TEXELS).shape[1]
            bands = V1_BANDS_BY_WIDTH.get(cent_w)
            if bands is None:
                raise SogFormatError(label, f"v1 shN_centroids width {cent_w} matches no SH degree")
            lo, hi = float(meta["shN"]["mins"]), float(meta["shN"]["maxs"])
            f_rest = _sh_rest(files, meta, count, label, bands, lambda b: lo + (hi - lo) * b / 255.0)
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise SogFormatError(label, f"meta.json is not a valid v1 SOG: bad or missing {exc}") from None
    return Splats(means=means, quats=quats, log_scales=log_scales, f_dc=sh0[:, :3].copy(),
                  opacity=sh0[:, 3].copy(), f_rest=f_rest)


def decode(meta: dict, files: dict[str, bytes], label: str) -> Splats:
    """Dispatch on the layout: `version: 2` -> v2, no version with `shape` keys -> v1."""
    version = meta.get("version")
    if version == 2:
        return decode_v2(meta, files, label)
    if version is None and isinstance(meta.get("means"), dict) and "shape" in meta["means"]:
        return decode_v1(meta, files, label)
    raise SogFormatError(label, f"unsupported SOG version {version!r}")


def sog_version(meta: dict) -> int:
    """2 for a v2 meta.json, 1 for the legacy layout; anything else is refused."""
    version = meta.get("version")
    if version == 2:
        return 2
    if version is None and isinstance(meta.get("means"), dict) and "shape" in meta["means"]:
        return 1
    raise SogFormatError("meta.json", f"unsupported SOG version {version!r}")


def read_sog_scene(meta: dict, files: dict[str, bytes], label: str) -> tuple[Splats, QuantizedScene | None, int]:
    """(splats, the stored codes for a v2 input else None, version)."""
    try:
        version = sog_version(meta)
    except SogFormatError as exc:
        raise SogFormatError(label, exc.problem) from None
    if version == 2:
        codes = codes_v2(meta, files, label)
        return finish(dequantize(codes), label, SogFormatError), codes, 2
    return decode_v1(meta, files, label), None, 1


def read_sog(path: str) -> Splats:
    """Decode a `.sog` bundle, a SOG folder, or a folder's meta.json."""
    meta, files, label = load_files(path)
    return decode(meta, files, label)


def read_sog_bytes(data: bytes, label: str = "<sog>") -> Splats:
    """Decode a `.sog` bundle held in memory."""
    meta, files, label = load_bundle_bytes(data, label)
    return decode(meta, files, label)

