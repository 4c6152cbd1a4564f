"""Bit output of the VP8L encoder: fields (value, width) in stream order -> bytes.

VP8L packs fields least significant bit first. Headers are small fields, put one by one or as
host arrays (a code description's thousand-odd) and gathered on the host, then copied to the
device in one piece; the pixel data is millions of fields, packed at once on the tensors'
device: every field's bit offset is a prefix sum of the widths, and fields never share a bit,
so adding each field into its 32-bit word (index_add) is the same as OR-ing it in.
"""
from __future__ import annotations

import numpy as np
import torch


class BitStream:
    """An ordered list of fields; `put` for single ones, `put_host` for host arrays of them,
    `put_fields` for tensors of them."""

    def __init__(self, device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self._pieces: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._small: list[tuple[int, int]] = []          # single fields not yet in _host
        self._host: list[tuple[np.ndarray, np.ndarray]] = []   # host fields not yet in _pieces

    def put(self, value: int, width: int) -> None:
        """Append `value` in `width` bits (0 <= value < 2**width)."""
        if width:
            if not 0 <= value < (1 << width):
                raise ValueError(f"{value} does not fit in {width} bits")
            self._small.append((value, width))

    def put_host(self, values: np.ndarray, widths: np.ndarray) -> None:
        """Append fields given as two same-shape integer arrays on the host (flattened
        row-major; each value below 2**width, fields of width 0 write nothing)."""
        self._gather_small()
        self._host.append((np.asarray(values, np.int64).reshape(-1), np.asarray(widths, np.int64).reshape(-1)))

    def put_fields(self, values: torch.Tensor, widths: torch.Tensor) -> None:
        """Append fields given as two same-shape int64 tensors (flattened row-major);
        fields of width 0 write nothing."""
        self._flush_host()
        self._pieces.append((values.reshape(-1).to(self.device, torch.int64),
                             widths.reshape(-1).to(self.device, torch.int64)))

    def _gather_small(self) -> None:
        if self._small:
            arr = np.array(self._small, np.int64)
            self._host.append((arr[:, 0], arr[:, 1]))
            self._small = []

    def _flush_host(self) -> None:
        """The host fields, in order, as one piece on the device (one copy)."""
        self._gather_small()
        if self._host:
            values = torch.from_numpy(np.concatenate([v for v, _ in self._host])).to(self.device)
            widths = torch.from_numpy(np.concatenate([w for _, w in self._host])).to(self.device)
            self._pieces.append((values, widths))
            self._host = []

    def to_bytes(self) -> bytes:
        """The stream, zero-padded to whole bytes."""
        self._flush_host()
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
