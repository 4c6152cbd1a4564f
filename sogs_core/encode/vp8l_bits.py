"""Bit output of the VP8L encoder: fields (value, width) in stream order -> bytes.

VP8L packs fields least significant bit first. Headers are a few hundred small fields, put one
by one from Python; the pixel data is millions of fields, packed at once on the tensors'
device: every field's bit offset is a prefix sum of the widths, and fields never share a bit,
so adding each field into its 32-bit word (index_add) is the same as OR-ing it in.
"""
from __future__ import annotations

import torch


class BitStream:
    """An ordered list of fields; `put` for single ones, `put_fields` for tensors of them."""

    def __init__(self, device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self._pieces: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._small: list[tuple[int, int]] = []

    def put(self, value: int, width: int) -> None:
        """Append `value` in `width` bits (0 <= value < 2**width)."""
        if width:
            if not 0 <= value < (1 << width):
                raise ValueError(f"{value} does not fit in {width} bits")
            self._small.append((value, width))

    def put_fields(self, values: torch.Tensor, widths: torch.Tensor) -> None:
        """Append fields given as two same-shape int64 tensors (flattened row-major);
        fields of width 0 write nothing."""
        self._flush_small()
        self._pieces.append((values.reshape(-1).to(self.device, torch.int64),
                             widths.reshape(-1).to(self.device, torch.int64)))

    def _flush_small(self) -> None:
        if self._small:
            arr = torch.tensor(self._small, dtype=torch.int64).to(self.device)
            self._pieces.append((arr[:, 0], arr[:, 1]))
            self._small = []

    def to_bytes(self) -> bytes:
        """The stream, zero-padded to whole bytes."""
        self._flush_small()
        if not self._pieces:
            return b""
        values = torch.cat([p[0] for p in self._pieces])
        widths = torch.cat([p[1] for p in self._pieces])
        ends = torch.cumsum(widths, 0)
        total = int(ends[-1]) if len(ends) else 0
        starts = ends - widths
        nwords = total // 32 + 2
        acc = torch.zeros(nwords, dtype=torch.int64, device=values.device)
        values = values & ((1 << widths) - 1)           # a field of width 0 writes nothing
        acc.index_add_(0, starts >> 5, values << (starts & 31))
        low = acc & 0xFFFFFFFF
        low[1:] |= acc[:-1] >> 32
        words = low.cpu().numpy().astype("<u4")
        return words.tobytes()[: (total + 7) // 8]
