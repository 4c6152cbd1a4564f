"""Every input format against the reference implementation, bad input per format, detection by
content, and lossy-in-lossy-out (a SOG v2 input keeps its codes).

splat-transform writes compressed PLY and SPZ (v3, v4); for `.splat`, `.ksplat` and SPZ v2 it
writes nothing, so tests/format_writers.py builds those files and splat-transform decodes them
as the oracle. Both sides compute in float64 and store float32, so the bound is one float32
rounding (rtol 1e-6); today they agree bit for bit.
"""
from __future__ import annotations

import gzip
import os
import re
import struct
import subprocess
import sys

import numpy as np
import pytest

from sogs_core.pipeline.compressor import Compressor

from sogs_core.settings import CompressSettings
from sogs_core.model.errors import SplatFileError
from sogs_core.formats.ply.write import ply_bytes, write_ply
from sogs_core.formats import detect, format_of_name, read_scene, read_splats
from sogs_core.formats.ply.read import read_ply
from sogs_core.formats.sog.read import read_sog

from . import splat_transform
from .conftest import ROOT, make_scene, shared_path
from .test_conformance import assert_same_splats
from .format_writers import ksplat_bytes, splat_bytes, spz_v2_bytes

#: fixture kind -> the format read_scene reports
REPORTED = {"compressed-ply": "compressed-ply", "spz-v4": "spz", "spz-v3": "spz", "spz-v2": "spz", "splat": "splat",
            "ksplat-0": "ksplat", "ksplat-1": "ksplat", "ksplat-2": "ksplat"}


def assert_equal_splats(ours, ref):
    """Equal within one float32 rounding (both sides compute in float64 and store float32)."""
    assert_same_splats(ours, ref, atol=1e-7, rtol=1e-6)


def _fixture_files(d, sh: int) -> dict[str, str]:
    """kind -> path of one synthetic scene in every format (the scene's count is a multiple of 8,
    so the two-section .ksplat keeps its sections 4-byte aligned, as splat-transform's reader needs)."""
    s = make_scene(1208 + 8 * sh, sh, seed=20 + sh)
    src = d / f"s{sh}.ply"
    write_ply(src, s)
    files = {"ply": str(src)}
    files["compressed-ply"] = str(d / f"s{sh}.compressed.ply")
    splat_transform.run(str(src), files["compressed-ply"])
    files["spz-v4"] = str(d / f"s{sh}.v4.spz")
    splat_transform.run(str(src), files["spz-v4"])
    files["spz-v3"] = str(d / f"s{sh}.v3.spz")
    splat_transform.run("--spz-version", "3", str(src), files["spz-v3"])
    files["spz-v2"] = str(d / f"s{sh}.v2.spz")
    (d / f"s{sh}.v2.spz").write_bytes(spz_v2_bytes(s))
    if sh == 0:
        files["splat"] = str(d / "s0.splat")
        (d / "s0.splat").write_bytes(splat_bytes(s))
    for mode in (0, 1, 2):
        files[f"ksplat-{mode}"] = str(d / f"s{sh}.m{mode}.ksplat")
        (d / f"s{sh}.m{mode}.ksplat").write_bytes(ksplat_bytes(s, mode, sections=2))
    return files


@pytest.fixture(scope="module")
def formats(tmp_path_factory):
    d = tmp_path_factory.mktemp("formats")
    return {sh: _fixture_files(d, sh) for sh in (0, 2, 3)}


CASES = [(sh, kind) for sh in (0, 2, 3) for kind in
         ("compressed-ply", "spz-v4", "spz-v3", "spz-v2", "splat", "ksplat-0", "ksplat-1", "ksplat-2")
         if not (kind == "splat" and sh)]


@pytest.mark.parametrize("sh,kind", CASES)
def test_we_decode_what_splat_transform_decodes(formats, sh, kind):
    path = formats[sh][kind]
    splat_transform.run(path, path + ".ref.ply")
    scene = read_scene(path)
    assert scene.format == REPORTED[kind]
    assert scene.splats.sh_degree == (0 if kind == "splat" else sh)
    assert_equal_splats(scene.splats, read_ply(path + ".ref.ply"))


@pytest.mark.parametrize("name", ["biker", "guitar"])
def test_shared_compressed_plys_read_natively(tmp_path, name):
    src = shared_path("scenes", "real", f"{name}.compressed.ply")
    if not os.path.isfile(src):
        pytest.skip(f"{src} not present")
    splat_transform.run(src, str(tmp_path / "expanded.ply"))
    scene = read_scene(src)
    assert scene.format == "compressed-ply" and scene.input_bytes == os.path.getsize(src)
    assert_equal_splats(scene.splats, read_ply(str(tmp_path / "expanded.ply")))


def test_detection_is_by_content(formats, tmp_path):
    # an SPZ and a compressed PLY with misleading names are read as what they are
    spz = tmp_path / "really_spz.ply"
    spz.write_bytes(open(formats[2]["spz-v4"], "rb").read())
    assert read_scene(str(spz)).format == "spz"
    cply = tmp_path / "scene.bin"
    cply.write_bytes(open(formats[0]["compressed-ply"], "rb").read())
    assert read_scene(str(cply)).format == "compressed-ply"
    # a .ksplat under another name is recognised by its header; bytes from a store work too
    ks = open(formats[3]["ksplat-1"], "rb").read()
    assert read_scene(ks, "s3://b/k/x.bin").format == "ksplat"
    assert detect(memoryview(b"PK\x03\x04rest"), "x") == "sog"
    assert format_of_name("a/b/meta.json") == "sog" and format_of_name("a/lod-meta.json") is None
    assert format_of_name("x.compressed.ply") == "ply" and format_of_name("x.webp") is None


def _bad_inputs(formats) -> list[tuple[str, bytes, str]]:
    """(file name, bytes, expected message fragment) for every way we know a file can be broken."""
    spz3 = open(formats[2]["spz-v3"], "rb").read()
    spz4 = open(formats[2]["spz-v4"], "rb").read()
    raw3 = gzip.decompress(spz3)
    ks = open(formats[2]["ksplat-1"], "rb").read()
    cply = open(formats[2]["compressed-ply"], "rb").read()
    splat = open(formats[0]["splat"], "rb").read()
    huge = bytearray(raw3[:16])
    struct.pack_into("<I", huge, 8, 50_000_000)              # under the scene cap, over what the bytes hold
    too_many = bytearray(raw3[:16])
    struct.pack_into("<I", too_many, 8, 2_000_000_000)       # over the scene cap: refused by that first
    v4_huge_toc = bytearray(spz4)
    struct.pack_into("<I", v4_huge_toc, 16, 10**9)
    v4_bad_stream = bytearray(spz4)
    data_start = struct.unpack_from("<I", spz4, 16)[0] + 16 * spz4[15]
    v4_bad_stream[data_start:data_start + 20] = b"\xff" * 20
    ks_bad_mode = bytearray(ks)
    struct.pack_into("<H", ks_bad_mode, 20, 7)
    ks_count = bytearray(ks)
    struct.pack_into("<I", ks_count, 16, 999_999)
    ks_bucket = bytearray(ks)                       # a bucket capacity of 2^28 (2.3 GB before the check)
    struct.pack_into("<I", ks_bucket, 4096 + 8, 1 << 28)
    ks_bucket_max = bytearray(ks)
    struct.pack_into("<I", ks_bucket_max, 4096 + 8, 2**32 - 1)
    ks_sections = bytearray(ks)
    struct.pack_into("<I", ks_sections, 4, 10**8)
    header_end = cply.index(b"end_header\n") + len(b"end_header\n")
    return [
        ("cut.spz", spz3[: len(spz3) // 2], "truncated"),
        ("gz.spz", spz3[:10] + b"\x00" * 200, "broken gzip"),
        ("magic.spz", gzip.compress(b"XXXX" + raw3[4:]), "no 'NGSP' magic"),
        ("version.spz", gzip.compress(raw3[:4] + struct.pack("<I", 9) + raw3[8:]), "unsupported SPZ version 9"),
        ("degree.spz", gzip.compress(raw3[:12] + b"\x05" + raw3[13:]), "SH degree 5"),
        ("huge.spz", gzip.compress(bytes(huge)), "cannot hold"),
        ("too_many.spz", gzip.compress(bytes(too_many)), "2,000,000,000 splats: more than the 100,000,000"),
        ("short.spz", b"NGSP", "truncated"),
        ("cut4.spz", spz4[: len(spz4) - 100], "truncated"),
        ("toc.spz", bytes(v4_huge_toc), "table of contents"),
        ("stream.spz", bytes(v4_bad_stream), "zstd"),
        ("cut.ksplat", ks[:-300], "truncated"),
        ("small.ksplat", ks[:100], "truncated"),
        ("version.ksplat", b"\x01\x00" + ks[2:], "unsupported .ksplat version"),
        ("mode.ksplat", bytes(ks_bad_mode), "compression mode 7"),
        ("count.ksplat", bytes(ks_count), "sections hold"),
        ("sections.ksplat", bytes(ks_sections), "section headers need"),
        ("bucket.ksplat", bytes(ks_bucket), "full buckets of 268,435,456 splats exceed"),
        ("bucket_max.ksplat", bytes(ks_bucket_max), "full buckets of 4,294,967,295 splats exceed"),
        ("odd.splat", splat[:-5], "not a whole number of 32-byte"),
        ("empty.splat", b"", "zero splats"),
        ("nan.splat", b"\x00\x00\xc0\x7f" + splat[4:], "non-finite values"),
        ("cut.compressed.ply", cply[: header_end + 100], "truncated body"),
        ("prop.compressed.ply", cply.replace(b"property uint packed_scale\n", b"", 1), "packed_scale"),
        ("chunks.compressed.ply", re.sub(rb"element chunk \d+\n", b"element chunk 2\n", cply, count=1),
         "need 5 chunks of 256"),
        ("mystery.bin", b"\x13\x37" * 50, "unknown format"),
        ("bad.sog", b"PK\x03\x04" + b"\x00" * 50, "not a .sog bundle"),
    ]


def test_every_bad_input_is_one_error_naming_the_file(formats):
    for name, data, fragment in _bad_inputs(formats):
        with pytest.raises(SplatFileError) as info:
            read_splats(data, name)
        msg = str(info.value)
        assert msg.startswith(f"{name}: ") and fragment in msg, (name, msg)


def test_bad_inputs_on_the_command_line_are_one_line(formats, tmp_path):
    for name, data, fragment in _bad_inputs(formats)[::4]:
        path = tmp_path / name
        path.write_bytes(data)
        r = subprocess.run([sys.executable, "-m", "sogs_cli.main", "info", str(path)], capture_output=True,
                           text=True, cwd=ROOT)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"sogs-cluster: error: {path}: ") and fragment in lines[0]


def test_a_count_that_the_bytes_cannot_hold_allocates_nothing(formats):
    """A header claiming ~2e9 splats in a few hundred bytes is refused before any array of that
    size exists (it would need ~100 GB)."""
    import tracemalloc

    raw = bytearray(gzip.decompress(open(formats[0]["spz-v3"], "rb").read())[:400])
    struct.pack_into("<I", raw, 8, 2_000_000_000)
    tracemalloc.start()
    with pytest.raises(SplatFileError):
        read_splats(gzip.compress(bytes(raw)), "x.spz")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 50_000_000


def test_compress_every_format(formats, tmp_path):
    """Each format goes through the whole compressor; what we write is what we read within the
    core bounds (the compressor's report compares splat by splat; matching by position would be
    ambiguous here: quantized inputs hold splats at identical positions)."""
    with Compressor(device="cpu", warm=False) as comp:
        for kind in ("compressed-ply", "spz-v4", "ksplat-2"):
            res = comp.compress(formats[3][kind], str(tmp_path / f"{kind}.sog"))
            assert res.input_format == REPORTED[kind] and res.sh_degree == 3
            assert res.fidelity["position_max_steps"] <= 1.0 and res.fidelity["rotation_max_deg"] <= 1.5
            assert read_sog(str(tmp_path / f"{kind}.sog")).count == res.count


def _sorted_rows(s) -> np.ndarray:
    rows = np.concatenate([s.means, s.quats, s.log_scales, s.f_dc, s.opacity[:, None], s.f_rest], axis=1)
    return rows[np.lexsort(rows.T[::-1])]


def test_a_sog_v2_input_keeps_its_codes(tmp_path):
    """Lossy in, lossy out: splat-transform's SOG of an SH scene, re-compressed, decodes to the same
    splats (as a set: only the order changes) and is not larger than what was given; with
    --requantize it is quantized again and differs."""
    write_ply(tmp_path / "in.ply", make_scene(4000, 2, seed=5))
    splat_transform.run(str(tmp_path / "in.ply"), str(tmp_path / "ref.sog"))
    with Compressor(device="cpu", warm=False) as comp:
        res = comp.compress(str(tmp_path / "ref.sog"), str(tmp_path / "ours.sog"))
    assert res.input_format == "sog-v2" and res.kept_codes
    assert res.fidelity["position_max_error"] == 0 and res.fidelity["f_rest_rmse"] == 0
    given, ours = read_sog(str(tmp_path / "ref.sog")), read_sog(str(tmp_path / "ours.sog"))
    np.testing.assert_array_equal(_sorted_rows(given), _sorted_rows(ours))
    assert os.path.getsize(tmp_path / "ours.sog") <= os.path.getsize(tmp_path / "ref.sog") * 1.01
    with Compressor(device="cpu", settings=CompressSettings(requantize=True), warm=False) as comp:
        again = comp.compress(str(tmp_path / "ref.sog"), str(tmp_path / "requant.sog"))
    assert not again.kept_codes and again.fidelity["f_rest_rmse"] > 0


def test_sh_bands_can_be_dropped_from_kept_codes(tmp_path):
    write_ply(tmp_path / "in.ply", make_scene(3000, 3, seed=6))
    splat_transform.run(str(tmp_path / "in.ply"), str(tmp_path / "ref.sog"))
    with Compressor(device="cpu", settings=CompressSettings(sh_bands=1), warm=False) as comp:
        res = comp.compress(str(tmp_path / "ref.sog"), str(tmp_path / "b1.sog"))
    assert res.kept_codes and res.sh_degree == 1
    given = read_sog(str(tmp_path / "ref.sog")).with_sh_degree(1)
    np.testing.assert_array_equal(_sorted_rows(given), _sorted_rows(read_sog(str(tmp_path / "b1.sog"))))


def test_legacy_v1_folder_is_upgraded_to_v2(tmp_path):
    folder = shared_path("scenes", "sog_refs", "playcanvas-logo_v1")
    if not os.path.isdir(folder):
        pytest.skip(f"{folder} not present")
    with Compressor(device="cpu", warm=False) as comp:
        res = comp.compress(folder, str(tmp_path / "logo.sog"))
    assert res.input_format == "sog-v1" and not res.kept_codes
    assert res.fidelity["position_max_steps"] <= 1.0 and res.fidelity["rotation_max_deg"] <= 1.5
    # the reference reads what we wrote
    splat_transform.run(str(tmp_path / "logo.sog"), str(tmp_path / "logo.ply"))
    assert read_ply(str(tmp_path / "logo.ply")).count == res.count


def test_cli_reads_every_format(formats, tmp_path):
    def cli(*args):
        return subprocess.run([sys.executable, "-m", "sogs_cli.main", *args], capture_output=True, text=True, cwd=ROOT)

    r = cli("info", formats[2]["spz-v3"])
    assert r.returncode == 0 and '"format": "spz"' in r.stdout and '"sh_degree": 2' in r.stdout
    r = cli("decompress", formats[0]["ksplat-0"], str(tmp_path / "k.ply"))
    assert r.returncode == 0, r.stderr
    assert_equal_splats(read_ply(str(tmp_path / "k.ply")), read_splats(formats[0]["ksplat-0"]))
    r = cli("compare", formats[0]["ply"], formats[0]["splat"], "--json")
    assert r.returncode == 0 and '"unmatched": 0' in r.stdout
    (tmp_path / "x.ply").write_bytes(ply_bytes(make_scene(500, 0, seed=1)))
    r = cli("compress", formats[0]["spz-v4"], str(tmp_path / "out.sog"), "--device", "cpu", "-q")
    assert r.returncode == 0 and "(spz)" in r.stdout, r.stderr
