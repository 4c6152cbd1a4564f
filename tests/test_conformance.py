"""Our SOG against the reference implementation (splat-transform, pinned) in both directions."""
from __future__ import annotations

import os

import numpy as np
import pytest

from sogs_core.model.splats import ATTRIBUTES
from sogs_core.pipeline.compressor import Compressor

from sogs_core.settings import CompressSettings
from sogs_core.formats.ply.write import write_ply
from sogs_core.formats.ply.read import read_ply
from sogs_core.formats.sog.read import read_sog

from . import splat_transform
from .conftest import make_scene, shared_path



def assert_same_splats(a, b, atol=1e-5, rtol=1e-5):
    assert a.count == b.count
    for attr in ATTRIBUTES:
        x, y = getattr(a, attr), getattr(b, attr)
        assert x.shape == y.shape, attr
        np.testing.assert_allclose(x, y, atol=atol, rtol=rtol, err_msg=attr)


@pytest.fixture(scope="module")
def ours(tmp_path_factory):
    d = tmp_path_factory.mktemp("conf")
    write_ply(d / "in.ply", make_scene(3001, 3, seed=11))
    with Compressor(device="cpu", settings=CompressSettings(), warm=False) as c:
        c.compress(str(d / "in.ply"), str(d / "scene.sog"))
        c.compress(str(d / "in.ply"), str(d / "folder"))
    return d


@pytest.mark.parametrize("target", ["scene.sog", "folder/meta.json"])
def test_reference_decodes_ours_to_the_same_values(ours, target):
    out = ours / (target.replace("/", "_") + ".ply")
    splat_transform.run(str(ours / target), str(out))
    assert_same_splats(read_sog(str(ours / target)), read_ply(str(out)))


def test_we_decode_what_the_reference_writes(tmp_path):
    write_ply(tmp_path / "in.ply", make_scene(2500, 2, seed=3))
    splat_transform.run(str(tmp_path / "in.ply"), str(tmp_path / "ref.sog"))
    splat_transform.run(str(tmp_path / "ref.sog"), str(tmp_path / "ref_decoded.ply"))
    assert_same_splats(read_sog(str(tmp_path / "ref.sog")), read_ply(str(tmp_path / "ref_decoded.ply")))


@pytest.mark.parametrize("ref", ["playbot_0_0", "playcanvas-logo_v1"])
def test_shared_reference_sogs(tmp_path, ref):
    folder = shared_path("scenes", "sog_refs", ref)
    if not os.path.isdir(folder):
        pytest.skip(f"{folder} not present")
    splat_transform.run(os.path.join(folder, "meta.json"), str(tmp_path / "ref.ply"))
    assert_same_splats(read_sog(folder), read_ply(str(tmp_path / "ref.ply")))


@pytest.mark.parametrize("name", ["guitar"])
def test_real_scene_round_trip(tmp_path, name):
    """A real trained scene (SuperSplat compressed PLY, expanded by the reference) through our
    compressor and decoder, with the same bounds as the synthetic round trips."""
    from sogs_core.pipeline.fidelity import fidelity

    src = shared_path("scenes", "real", f"{name}.compressed.ply")
    if not os.path.isfile(src):
        pytest.skip(f"{src} not present")
    ply = tmp_path / f"{name}.ply"
    splat_transform.run(src, str(ply))
    scene = read_ply(str(ply))
    with Compressor(device="cpu", settings=CompressSettings(), warm=False) as c:
        res = c.compress(str(ply), str(tmp_path / "out.sog"))
    dec = read_sog(str(tmp_path / "out.sog"))
    rep = fidelity(scene, dec)
    assert dec.count == scene.count == res.count
    assert rep["position_max_steps"] <= 1.0
    assert rep["rotation_max_deg"] <= 1.5
    assert rep["opacity_max_error"] <= 0.5 / 255 + 1e-6
    # the reference can read it back too
    splat_transform.run(str(tmp_path / "out.sog"), str(tmp_path / "back.ply"))
    assert_same_splats(dec, read_ply(str(tmp_path / "back.ply")))
