"""Device memory is freed when the last reference goes, not when the cyclic collector runs:
no reference cycle may hold a tensor after a compression (a closure over an object that kept
each palette fit's rows alive held gigabytes of a GPU over a streamed SOG's files)."""
from __future__ import annotations

import gc
import weakref

import torch

from sogs_core.formats.ply.write import write_ply
from sogs_core.pipeline.compressor import Compressor
from sogs_core.pipeline.streamed import write_streamed
from sogs_core.quantize.palette.cells import CellSearch
from sogs_core.settings import ChunkOptions, CompressSettings, StreamedSettings

from .conftest import make_scene


def _tensors_in_cycles(run) -> list[torch.Tensor]:
    """The tensors that only the cyclic collector would free after run()."""
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        run()
        gc.collect()
        return [o for o in gc.garbage if isinstance(o, torch.Tensor)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


def test_a_cell_search_goes_with_its_last_reference():
    x = torch.randn(4000, 45)
    search = CellSearch(x)
    search(x[torch.randperm(4000)[:512]])
    ref = weakref.ref(search)
    was = gc.isenabled()
    gc.disable()
    try:
        del search
        assert ref() is None
    finally:
        if was:
            gc.enable()


def test_no_tensor_left_in_a_cycle_by_a_compression(tmp_path):
    write_ply(tmp_path / "in.ply", make_scene(6000, 3))
    comp = Compressor(device="cpu", settings=CompressSettings(quality=80))
    assert _tensors_in_cycles(lambda: comp.compress(str(tmp_path / "in.ply"), str(tmp_path / "o.sog"))) == []
    streamed = StreamedSettings(levels=2, chunks=ChunkOptions(chunk_count=2000, chunk_min=500))
    assert _tensors_in_cycles(lambda: write_streamed(comp, [str(tmp_path / "in.ply")],
                                                     str(tmp_path / "lod" / "lod-meta.json"), streamed,
                                                     processes=1)) == []
