"""PLY reader: formats it must read, and one test per way a file can be malformed."""
from __future__ import annotations

import time

import numpy as np
import pytest

from sogs_core.model.splats import ATTRIBUTES
from sogs_core.model.errors import PlyError
from sogs_core.formats.ply.write import ply_bytes, write_ply
from sogs_core.formats.ply.read import read_ply

from .conftest import make_scene


def _custom_ply(n: int, endian: str = "<", ftype: str = "float", extra_before: bool = False,
                extra_props: bool = True, rest: int = 9) -> tuple[bytes, np.ndarray]:
    names = ["x", "y", "z"] + (["nx", "ny", "nz", "red"] if extra_props else [])
    names += ["f_dc_0", "f_dc_1", "f_dc_2"] + [f"f_rest_{i}" for i in range(rest)]
    names += ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    np_t = {"float": "f4", "double": "f8"}[ftype]
    rng = np.random.default_rng(0)
    vals = rng.normal(size=(n, len(names)))
    fmt = "binary_little_endian" if endian == "<" else "binary_big_endian"
    header = f"ply\nformat {fmt} 1.0\ncomment made by a test\n"
    pre = b""
    if extra_before:
        header += "element camera 2\nproperty float fx\nproperty uchar id\n"
        pre = np.zeros(2, dtype=[("fx", endian + "f4"), ("id", "u1")]).tobytes()
    header += f"element vertex {n}\n" + "".join(f"property {ftype} {p}\n" for p in names)
    header += "element face 0\nproperty list uchar int vertex_indices\nend_header\n"
    body = vals.astype(endian + np_t).tobytes()
    return header.encode() + pre + body, vals[:, names.index("x")]


@pytest.mark.parametrize("endian", ["<", ">"])
@pytest.mark.parametrize("ftype", ["float", "double"])
def test_reads_endianness_and_precision(endian, ftype):
    data, xs = _custom_ply(50, endian, ftype, extra_before=True)
    s = read_ply(data)
    assert s.count == 50 and s.sh_degree == 1
    np.testing.assert_allclose(s.means[:, 0], xs.astype(np.float32), rtol=1e-6)


@pytest.mark.parametrize("sh", [0, 1, 2, 3])
def test_round_trip_and_sh_degree(tmp_path, sh):
    scene = make_scene(300, sh)
    path = tmp_path / "s.ply"
    write_ply(path, scene)
    back = read_ply(str(path))
    assert back.sh_degree == sh
    for attr in ATTRIBUTES:
        np.testing.assert_array_equal(getattr(back, attr), getattr(scene, attr))


def test_decodes_a_million_splats_quickly():
    scene = make_scene(1 << 20, 3)
    data = ply_bytes(scene)
    t0 = time.perf_counter()
    s = read_ply(data)
    elapsed = time.perf_counter() - t0
    assert s.count == 1 << 20
    # a bound on behaviour (no per-row Python loop), generous for a loaded 2-core CI box
    assert elapsed < 5.0


def _good() -> bytes:
    return ply_bytes(make_scene(20, 1))


def test_not_a_ply():
    with pytest.raises(PlyError, match="not a PLY"):
        read_ply(b"\x89PNG\r\n\x1a\n" + b"0" * 100, "pic.ply")


def test_no_end_header():
    with pytest.raises(PlyError, match="end_header"):
        read_ply(b"ply\nformat binary_little_endian 1.0\nelement vertex 3\n")


def test_truncated_body_names_file_and_counts():
    data = _good()
    with pytest.raises(PlyError, match=r"cut\.ply: truncated body: header claims 20 splats"):
        read_ply(data[:-10], "cut.ply")


def test_header_claims_more_than_bytes_hold_does_not_allocate():
    data = _good().replace(b"element vertex 20", b"element vertex 900000000000")
    t0 = time.perf_counter()
    with pytest.raises(PlyError, match="truncated body: header claims 900000000000 splats"):
        read_ply(data, "huge.ply")
    assert time.perf_counter() - t0 < 1.0


def test_missing_property():
    data = _good().replace(b"property float opacity\n", b"property float opacityx\n")
    with pytest.raises(PlyError, match="missing property: opacity"):
        read_ply(data, "m.ply")


@pytest.mark.parametrize("attr,row,col,bad", [("log_scales", 7, 1, np.nan), ("means", 3, 0, np.inf),
                                               ("f_dc", 9, 2, -np.inf), ("opacity", 4, None, np.nan)])
def test_non_finite_values(attr, row, col, bad):
    scene = make_scene(20, 0)
    arr = getattr(scene, attr)
    if col is None:
        arr[row] = bad
    else:
        arr[row, col] = bad
    with pytest.raises(PlyError, match=f"non-finite values .* in {attr} of 1 splats \\(first at splat {row}\\)"):
        read_ply(ply_bytes(scene), "nan.ply")


def test_saturated_opacity_and_flat_scales_are_clamped():
    """Real SuperSplat exports hold +inf opacity logits and -inf log-scales: meaningful, kept."""
    scene = make_scene(20, 0)
    scene.opacity[2], scene.opacity[3] = np.inf, -np.inf
    scene.log_scales[5, 0] = -np.inf
    s = read_ply(ply_bytes(scene))
    assert s.opacity[2] == 20.0 and s.opacity[3] == -20.0 and s.log_scales[5, 0] == -30.0
    assert np.isfinite(s.log_scales).all()


def test_zero_splats():
    data = ply_bytes(make_scene(5, 0))
    head, _, _ = data.partition(b"end_header\n")
    with pytest.raises(PlyError, match="zero splats"):
        read_ply(head.replace(b"element vertex 5", b"element vertex 0") + b"end_header\n", "z.ply")


def test_ascii_rejected():
    with pytest.raises(PlyError, match="ASCII PLY is not supported"):
        read_ply(b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nend_header\n1\n")


def test_wrong_rest_count():
    data, _ = _custom_ply(5, rest=7)
    with pytest.raises(PlyError, match="7 f_rest properties"):
        read_ply(data)


def test_zero_quaternion():
    scene = make_scene(10, 0)
    scene.quats[3] = 0
    with pytest.raises(PlyError, match="zero-length rotation"):
        read_ply(ply_bytes(scene))


def test_missing_file(tmp_path):
    with pytest.raises(PlyError, match="no such file"):
        read_ply(str(tmp_path / "nope.ply"))


def test_row_blocks_copy_and_check_match_numpy():
    """The reader's threaded column copies equal one numpy copy (strided, float64 in), and the
    finiteness check finds a NaN in the last block as in the first."""
    from sogs_core.formats import row_blocks

    n = 5 * row_blocks.MIN_BLOCK_ROWS + 17                # several blocks, ragged end
    table = np.random.default_rng(1).normal(size=(n, 9))
    src = table[:, 2:7]
    got = row_blocks.contiguous_float32(src)
    assert got.flags.c_contiguous and got.dtype == np.float32
    assert np.array_equal(got, np.ascontiguousarray(src, dtype=np.float32))
    assert len(row_blocks.blocks(n)) == min(row_blocks._pool()._max_workers, 5)
    assert row_blocks.all_finite(got)
    for row in (0, n - 1):
        bad = got.copy()
        bad[row, 3] = np.nan
        assert not row_blocks.all_finite(bad)


def test_big_ply_with_nan_in_the_last_rows_is_refused():
    """A body large enough to be copied and checked in blocks still names the first bad splat."""
    n = 3 * (1 << 16) + 5
    data, _ = _custom_ply(n, extra_props=False)
    columns = 23                                          # x y z, f_dc 3, f_rest 9, opacity, scale 3, rot 4
    body = len(data) - n * columns * 4
    table = np.frombuffer(data, "<f4", offset=body).reshape(n, columns).copy()
    row = n - 2
    table[row, 0] = np.nan
    with pytest.raises(PlyError, match=f"first at splat {row}"):
        read_ply(data[:body] + table.tobytes(), "big.ply")
