"""compress -> write -> read back -> decode, for SH degree 0..3 and counts that are not squares.

Bounds, each from the quantization: positions within one 16-bit step in log space; rotation
<= 1.5 degrees; log-scales and f_dc exactly the nearest entry of their codebook; opacity within
half a byte after the sigmoid; count preserved and the match by position one-to-one.
"""
from __future__ import annotations

import io
import os
import zipfile

import numpy as np
import pytest

from sogs_core.model.splats import ATTRIBUTES
from sogs_core.pipeline.compressor import Compressor

from sogs_core.settings import CompressSettings
from sogs_core.pipeline.fidelity import fidelity
from sogs_core.formats.ply.write import ply_bytes, write_ply
from sogs_core.formats.sog.read import read_sog, read_sog_bytes

from .conftest import make_scene


@pytest.fixture(scope="module")
def comp():
    c = Compressor(device="cpu", settings=CompressSettings(), threads=2)
    yield c
    c.close()


def _nearest_in(values: np.ndarray, codebook: list) -> np.ndarray:
    cb = np.asarray(codebook, np.float32)
    return np.abs(values.reshape(-1, 1) - cb[None]).min(1).reshape(values.shape)


@pytest.mark.parametrize("n,sh", [(1000, 0), (4097, 1), (1000, 2), (4097, 3)])
def test_round_trip_bounds(tmp_path, comp, n, sh):
    scene = make_scene(n, sh, seed=n + sh)
    src = tmp_path / "in.ply"
    write_ply(src, scene)
    out = str(tmp_path / "out.sog")
    res = comp.compress(str(src), out)
    assert res.count == n and res.sh_degree == sh
    assert set(res.seconds) >= {"read", "sort", "cluster", "quantize", "encode", "write"}
    dec = read_sog(out)
    assert dec.count == n and dec.sh_degree == sh
    rep = fidelity(scene, dec)            # matched by position, as a user would
    assert rep["unmatched"] == 0          # no splat lost or duplicated
    assert rep["position_max_steps"] <= 1.0
    assert rep["rotation_max_deg"] <= 1.5
    assert rep["opacity_max_error"] <= 0.5 / 255 + 1e-6
    # the in-memory fidelity the manifest records equals the one read back from disk
    assert res.fidelity["position_max_steps"] == pytest.approx(rep["position_max_steps"], abs=1e-6)
    # scales and colours: every decoded value is the nearest codebook entry to its original
    from sogs_core.formats.sog.package import load_files

    meta, _, _ = load_files(out)
    from sogs_core.pipeline.fidelity import match_by_position

    idx, _ = match_by_position(scene, dec)
    d = dec.take(idx)
    err_s = np.abs(scene.log_scales - d.log_scales)
    np.testing.assert_allclose(err_s, _nearest_in(scene.log_scales, meta["scales"]["codebook"]), atol=1e-6)
    err_c = np.abs(scene.f_dc - d.f_dc)
    np.testing.assert_allclose(err_c, _nearest_in(scene.f_dc, meta["sh0"]["codebook"]), atol=1e-6)
    if sh:
        assert meta["shN"]["bands"] == sh
        # the palette is a lossy cluster: its error must be well below the spread of f_rest
        assert rep["f_rest_rmse"] < 0.5 * float(scene.f_rest.std())


def test_folder_and_bundle_decode_identically(tmp_path, comp):
    scene = make_scene(1500, 3)
    write_ply(tmp_path / "in.ply", scene)
    comp.compress(str(tmp_path / "in.ply"), str(tmp_path / "a.sog"))
    comp.compress(str(tmp_path / "in.ply"), str(tmp_path / "b"))
    a = read_sog(str(tmp_path / "a.sog"))
    b = read_sog(str(tmp_path / "b"))
    for attr in ATTRIBUTES:
        np.testing.assert_array_equal(getattr(a, attr), getattr(b, attr))
    assert sorted(os.listdir(tmp_path / "b")) == sorted(
        ["meta.json", "means_l.webp", "means_u.webp", "quats.webp", "scales.webp", "sh0.webp",
         "shN_centroids.webp", "shN_labels.webp"])


def test_same_seed_same_bytes(tmp_path, comp):
    scene = make_scene(1200, 1)
    write_ply(tmp_path / "in.ply", scene)
    data = (tmp_path / "in.ply").read_bytes()
    a = comp.compress(data).package.bundle_bytes()
    b = comp.compress(data).package.bundle_bytes()
    assert a == b
    assert read_sog_bytes(a).count == 1200


def test_bundle_deflates_meta_json_and_stores_images(tmp_path, comp):
    """meta.json's codebook text is deflated (the engine and splat-transform inflate it); the
    WebP images stay stored, and the meta's bytes are those the folder form writes."""
    write_ply(tmp_path / "in.ply", make_scene(1200, 1))
    pkg = comp.compress((tmp_path / "in.ply").read_bytes()).package
    with zipfile.ZipFile(io.BytesIO(pkg.bundle_bytes())) as z:
        infos = {i.filename: i for i in z.infolist()}
        assert z.namelist()[0] == "meta.json"
        assert infos["meta.json"].compress_type == zipfile.ZIP_DEFLATED
        assert infos["meta.json"].compress_size < infos["meta.json"].file_size
        assert z.read("meta.json") == pkg.meta_bytes()
        assert all(i.compress_type == zipfile.ZIP_STORED for n, i in infos.items() if n != "meta.json")
        assert set(infos) == {"meta.json", *pkg.files}


def test_sh_bands_option_drops_bands(tmp_path):
    scene = make_scene(800, 3)
    write_ply(tmp_path / "in.ply", scene)
    with Compressor(device="cpu", settings=CompressSettings(sh_bands=1), warm=False) as c:
        res = c.compress(str(tmp_path / "in.ply"), str(tmp_path / "o.sog"))
    assert res.sh_degree == 1
    assert read_sog(str(tmp_path / "o.sog")).sh_degree == 1


def test_sort_shrinks_output(tmp_path, comp):
    """The point of PLAS: the same scene sorted compresses smaller than in input order.

    In the shared synthetic scenes rotations, opacity and most of the scale are per-splat noise
    and the low position byte is incompressible, so the gain shows in the spatially smooth
    images: high position byte and colour (about 9 % each at 4096 splats; we require 5 %)."""
    scene = make_scene(4096, 0)
    data = ply_bytes(scene)
    srt = comp.compress(data).package.files
    with Compressor(device="cpu", settings=CompressSettings(order="input"), warm=False) as c:
        raw = c.compress(data).package.files
    smooth = ("means_u.webp", "sh0.webp")
    assert sum(len(srt[k]) for k in smooth) < 0.95 * sum(len(raw[k]) for k in smooth)
    assert sum(map(len, srt.values())) < sum(map(len, raw.values()))


def test_meta_matches_reference_layout(tmp_path, comp):
    """Keys and image sizes as the format brief (../shared/docs/sog-format.md) lays them out."""
    from sogs_core.formats.sog.package import load_files
    from sogs_core.webp.codec import decode_webp

    n = 4097
    write_ply(tmp_path / "in.ply", make_scene(n, 2))
    comp.compress(str(tmp_path / "in.ply"), str(tmp_path / "o"))
    meta, files, _ = load_files(str(tmp_path / "o"))
    assert meta["version"] == 2 and meta["count"] == n
    assert set(meta) == {"version", "asset", "count", "means", "scales", "quats", "sh0", "shN"}
    assert meta["means"]["files"] == ["means_l.webp", "means_u.webp"]
    assert len(meta["scales"]["codebook"]) == 256 and len(meta["sh0"]["codebook"]) == 256
    assert meta["shN"] == {"count": 4096, "bands": 2, "codebook": meta["shN"]["codebook"],
                           "files": ["shN_centroids.webp", "shN_labels.webp"]}
    shapes = {name: decode_webp(data).shape for name, data in files.items()}
    per_splat = {s for name, s in shapes.items() if name != "shN_centroids.webp"}
    assert len(per_splat) == 1
    h, w, _ = per_splat.pop()
    assert w * h >= n and w % 4 == 0
    assert shapes["shN_centroids.webp"] == (4096 // 64, 64 * 8, 4)
    quats = decode_webp(files["quats.webp"]).reshape(-1, 4)[:n]
    assert set(np.unique(quats[:, 3])) <= {252, 253, 254, 255}


def test_codebooks_written_as_shortest_float32_decimals():
    """meta.json's codebooks read back to the very float32s quantized (every reader stores them
    as float32), in at most 9 significant digits where a double's repr takes 17."""
    import json

    from sogs_core.formats.sog.layout import codebook_json

    rng = np.random.default_rng(3)
    values = (rng.standard_normal(4096) * 10.0 ** rng.integers(-30, 30, 4096)).astype(np.float32)
    values = np.concatenate([values, np.array([0.0, -0.0, 1e-45, 3.4e38, -1.2e-38], np.float32)])
    text = json.dumps(codebook_json(values))
    back = np.asarray(json.loads(text), np.float32)
    assert np.array_equal(back.view(np.int32), values.view(np.int32))
    digits = [len(t.strip(" -").split("e")[0].replace(".", "").strip("0")) for t in text[1:-1].split(",")]
    assert max(digits) <= 9
