"""An INRIA PLY on disk read by ranges: positions in slices, splats gathered by row index.

Why: a streamed SOG exists for scenes too large to hold at once (tens of millions of splats,
several GB). The file is memory-mapped, so only the pages a slice or a gather touches are read;
the positions of all splats (12 bytes each) are the one thing held for the whole scene.
"""
from __future__ import annotations

from typing import Iterator, Optional

import numpy as np

from sogs_core.model.errors import PlyError
from sogs_core.model.splats import Splats
from sogs_core.formats.ply.header import PlyHeader, is_compressed, locate, parse_header
from sogs_core.formats.ply.read import check_vertex, splats_from_rows
from sogs_core.formats.row_blocks import all_finite, contiguous_float32

#: rows per slice when positions are read
SLICE_ROWS = 1 << 20


class PlyRows:
    """The vertex rows of one INRIA PLY file, mapped, not read (see `positions` and `gather`);
    made by `open_ply_rows`, which maps the file and parses its header once."""

    def __init__(self, mapped: np.memmap, header: PlyHeader, name: str) -> None:
        self.name = name
        self._map = mapped
        buf = memoryview(mapped)
        vertex = locate(buf, self.name, header, ("vertex",)).get("vertex")
        if vertex is None:
            raise PlyError(self.name, "no 'vertex' element in the header")
        self.n_rest = check_vertex(vertex, self.name)
        self.rows = vertex.rows(buf)
        self.count = vertex.count
        self.bytes_per_splat = vertex.dtype.itemsize
        # the same rows as plain bytes, (count, row size): numpy copies these far faster than records
        self._bytes = self.rows.view(np.uint8).reshape(self.count, self.bytes_per_splat)

    def slices(self, rows: int = SLICE_ROWS) -> Iterator[tuple[int, np.ndarray]]:
        for start in range(0, self.count, rows):
            yield start, self.rows[start:start + rows]

    def positions(self) -> np.ndarray:
        """(N, 3) float32 centres; non-finite ones refused. Where x, y, z lie side by side as
        little-endian floats (every writer we know), one strided view of the mapped rows copied
        by row blocks on the reader's threads (`row_blocks`): the copy touches every page of
        the file, which one thread does at a fraction of what the disk cache gives several."""
        fields = self.rows.dtype.fields
        packed = [fields[a][1] for a in "xyz"] == [fields["x"][1] + 4 * k for k in range(3)] and \
            all(fields[a][0] == np.dtype("<f4") for a in "xyz")
        if packed:
            off = fields["x"][1]
            out = contiguous_float32(self._bytes[:, off:off + 12].view("<f4"))
        else:
            out = np.empty((self.count, 3), np.float32)
            for start, part in self.slices():
                for a, axis in enumerate("xyz"):
                    out[start:start + len(part), a] = part[axis]
        if not all_finite(out):
            bad = ~np.isfinite(out).all(1)
            raise PlyError(self.name, f"non-finite values (NaN or inf) in means of {int(bad.sum())} splats "
                                      f"(first at splat {int(np.argmax(bad))})")
        return out

    def gather(self, index: np.ndarray) -> Splats:
        """The splats at `index` (sorted indices read the file front to back), checked as any read.
        The rows are taken as plain bytes (an (N, row size) uint8 view) and viewed as records
        after: the same bytes as indexing the records, in an eighth of the time (540k rows of 68
        bytes: 0.017 s against 0.14 s, bench/NOTES.md, session 41)."""
        body = np.take(self._bytes, np.asarray(index), axis=0).view(self.rows.dtype).reshape(-1)
        return splats_from_rows(body, self.n_rest, self.name)


def open_ply_rows(path: str, name: str | None = None) -> Optional[PlyRows]:
    """`PlyRows` for a local INRIA PLY file; None for any other file, or one that cannot be
    mapped (it is then read whole, and that read says what is wrong)."""
    try:
        with open(path, "rb") as f:
            if f.read(3) != b"ply":
                return None
        mapped = np.memmap(path, mode="r", dtype=np.uint8)
    except (OSError, ValueError):                    # ValueError: an empty file cannot be mapped
        return None
    header = parse_header(memoryview(mapped), name or path)
    if is_compressed(header):
        return None
    return PlyRows(mapped, header, name or path)
