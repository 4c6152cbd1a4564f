"""The PLAS target and group steps as fused CUDA kernels (CuPy RawModule, NVRTC at first use).

Why: the torch step spends ~15 launches and several full passes over memory per step, and a
large sort runs many thousands of steps. Here four lanes own one group of four cells: each finds
its cell through the same keyed Feistel bijection as `plas_steps.block_permutation`, loads its row
and the four target rows, the quad scores the 24 assignments, and each lane writes its row to
its new cell (groups are disjoint: in place); the step's before/after costs are summed per block.
A whole config (steps against one target until the gain falls under the break) is one
cooperative launch with a grid barrier between steps, so the host's launch time, close to a
step's own, no longer adds to every step, and the configs of a level left after it ends return
at once. The target is a summed-area table (chunked scans along x, then y: three small kernels
per axis) turned into the normalised box mean by a fourth, faster than torch's cumsum along the
outer axes (bench/plas_bench.py --micro, bench/NOTES.md).

Import fails (ImportError) where CuPy is missing; `plas` then uses the torch step.
"""
from __future__ import annotations

import ctypes
import os
import threading
import warnings

import cupy  # noqa: F401  (ImportError here selects the torch backend)
import torch

from sogs_core.model.device import cuda_index
from sogs_core.order.plas_steps import MIX_A, MIX_B, PERMS_4, feistel_half_bits, run_level_stepwise

#: the kernels' CUDA source, kept beside this module and filled in by `kernel_source`
KERNEL_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "plas_kernels.cu")


_modules: dict[tuple[int, int, bool], object] = {}
_lock = threading.Lock()


def kernel_source(cp: int, mask_ch: int, half: bool = False) -> str:
    """The CUDA source for rows of cp channels (a multiple of 4), the mask in channel mask_ch,
    stored as float32 or (half) float16."""
    perms = ", ".join("{" + ", ".join(str(int(v)) for v in row) + "}" for row in PERMS_4.tolist())
    with open(KERNEL_FILE, encoding="utf-8") as f:
        source = f.read()
    return (source.replace("__CP__", str(cp)).replace("__MASK_CH__", str(mask_ch))
            .replace("__STORE_HALF__", "1" if half else "0").replace("__PERMS__", perms)
            .replace("__MIX_A__", hex(MIX_A)).replace("__MIX_B__", hex(MIX_B)))


def _module(cp: int, mask_ch: int, half: bool):
    with _lock:
        mod = _modules.get((cp, mask_ch, half))
        if mod is None:
            mod = cupy.RawModule(code=kernel_source(cp, mask_ch, half), options=("--std=c++14",))
            _modules[(cp, mask_ch, half)] = mod
        return mod


P, I32, I64, U32, F64 = ctypes.c_uint64, ctypes.c_int32, ctypes.c_int64, ctypes.c_uint32, ctypes.c_double


def _launch(fn: int, blocks: int, threads: int, stream: int, args: tuple, cooperative: bool = False) -> None:
    """Launch kernel `fn` (a driver function handle) on the raw CUDA stream `stream`; args are
    ctypes values in the kernel's parameter order (P for a device pointer), copied by the driver
    during the call. Launching through the driver API keeps every kernel on torch's stream with
    no CuPy stream object (cupy.cuda.ExternalStream is deprecated) and costs little host
    time."""
    params = (ctypes.c_void_p * len(args))(*(ctypes.addressof(a) for a in args))
    if cooperative:
        cupy.cuda.driver.launchCooperativeKernel(fn, blocks, 1, 1, threads, 1, 1, 0, stream,
                                                 ctypes.addressof(params))
    else:
        cupy.cuda.driver.launchKernel(fn, blocks, 1, 1, threads, 1, 1, 0, stream, ctypes.addressof(params), 0)


class CudaPlasBackend:
    """Same interface and results as plas.TorchPlasBackend; a whole config per kernel launch.

    `run_level` queues every config of a level without waiting: each config is the target kernels
    plus one cooperative launch that runs the steps and decides on the device when to stop (see
    plas_config_steps), so the host's launch time no longer adds to each step. Where a
    cooperative launch is not possible it falls back to one launch per step with the gain read
    back after each (plas_steps.run_level_stepwise)."""

    name = "cuda"
    THREADS = 256
    CHUNK = 32          # elements per thread in the summed-area scans

    def __init__(self, h: int, w: int, n: int, cp: int, mask_ch: int, device: torch.device,
                 dtype: torch.dtype = torch.float32) -> None:
        if dtype not in (torch.float32, torch.float16):
            raise ValueError("grid storage must be float32 or float16")
        if cp % 4:
            raise ValueError("rows must hold a multiple of 4 floats")
        self.h, self.w, self.n, self.cp, self.mask_ch = h, w, n, cp, mask_ch
        self.device = device
        mod = _module(cp, mask_ch, dtype == torch.float16)

        def fn(name: str) -> int:
            return mod.get_function(name).kernel.ptr

        self._step, self._target = fn("plas_group_step"), fn("plas_box_target")
        self._scan = ((fn("scan_totals_grid"), fn("scan_apply_grid")), (fn("scan_totals_sat"), fn("scan_apply_sat")))
        self._offsets = fn("scan_chunk_offsets")
        self._sat = torch.empty(h, w, cp, device=device)
        nq = cp // 4
        # (lanes, outer stride, step, length) of the two scans, in float4 units
        self._axes = ((h * nq, w * nq, nq, w), (w * nq, nq, w * nq, h))
        chunks = max((length + self.CHUNK - 1) // self.CHUNK for *_, length in self._axes)
        self._totals = torch.empty(max(lanes for lanes, *_ in self._axes) * chunks * 4, device=device)
        # the torch stream current now runs every kernel of this sort, in order with torch's ops
        self._stream = torch.cuda.current_stream(device).cuda_stream
        # persistent config kernel: control words, a ring of 3 step sums, and its grid size
        self._ctrl = torch.zeros(4, dtype=torch.int32, device=device)
        self._ring = torch.zeros(6, dtype=torch.float64, device=device)
        self._coop_fn, self._coop_blocks = _cooperative(mod, self.THREADS, device)

    @property
    def persistent(self) -> bool:
        """Whether configs run as one cooperative launch each (False: one launch per step)."""
        return self._coop_blocks > 0

    def target(self, grid: torch.Tensor, r: int, out: torch.Tensor, skip_flag: int = 0) -> None:
        """The box target of radius r into out; skip_flag: device address of a flag that, when set
        by an earlier kernel, makes these kernels return at once (0: never skip)."""
        h, w, T, L, st = self.h, self.w, self.THREADS, self.CHUNK, self._stream
        tot, sat, flag = self._totals.data_ptr(), self._sat.data_ptr(), P(skip_flag)
        src = grid.data_ptr()
        for (totals, apply), (lanes, outer, step, length) in zip(self._scan, self._axes):
            # rows (along x) from the grid, then columns of the row sums, in place
            nc = (length + L - 1) // L
            blocks = (lanes * nc + T - 1) // T
            args = (I32(lanes), I64(outer), I64(step), I32(length), I32(L), flag)
            _launch(totals, blocks, T, st, (P(src), P(tot), *args))
            _launch(self._offsets, (lanes + T - 1) // T, T, st, (P(tot), I32(lanes), I32(nc), flag))
            _launch(apply, blocks, T, st, (P(src), P(sat), P(tot), *args))
            src = sat
        _launch(self._target, (h * w + T - 1) // T, T, st, (P(sat), P(out.data_ptr()), I32(h), I32(w), I32(r), flag))

    def _geometry(self, block: int) -> tuple[int, int, int]:
        nbx = self.w // block
        return nbx, (self.h // block) * nbx * (block * block // 4), feistel_half_bits(block * block)

    def _head(self, grid: torch.Tensor, order: torch.Tensor, target: torch.Tensor, block: int,
              sy: int, sx: int) -> tuple:
        """The arguments both step kernels start with, and the group count."""
        nbx, total, half = self._geometry(block)
        return (P(grid.data_ptr()), P(order.data_ptr()), P(target.data_ptr()), I32(self.h), I32(self.w),
                I32(self.n), I32(block), I32(nbx), I64(total), I32(sy), I32(sx)), total, half

    def step(self, grid: torch.Tensor, order: torch.Tensor, target: torch.Tensor, block: int,
             sy: int, sx: int, keys, sums: torch.Tensor) -> None:
        """One step with explicit keys (the per-step fallback, and the checks against torch)."""
        head, total, half = self._head(grid, order, target, block, sy, sx)
        T = self.THREADS
        _launch(self._step, (4 * total + T - 1) // T, T, self._stream,      # four lanes per group
                (*head, *(U32(int(k)) for k in keys), I32(half), P(sums.data_ptr())))

    def run_level(self, grid: torch.Tensor, order: torch.Tensor, target: torch.Tensor, r: int,
                  block: int, draws: list, brk: float, min_configs: int, cap: int,
                  steps_out: torch.Tensor) -> None:
        """Queue the configs of one level (see plas_steps.run_level_stepwise for the semantics);
        steps_out (len(draws),) int32 on the device receives each config's step count, 0 for
        the configs skipped after the level ended."""
        if not self.persistent:
            run_level_stepwise(self, grid, order, target, r, block, draws, brk, min_configs, cap, steps_out)
            return
        flag = self._ctrl.data_ptr()       # CTRL_LEVEL_DONE is word 0
        self._ctrl[0].zero_()
        for k, (sy, sx, base) in enumerate(draws):
            self.target(grid, r, target, skip_flag=flag)
            head, _, half = self._head(grid, order, target, block, sy, sx)
            args = (*head, *(U32(int(b)) for b in base), I32(half), P(self._ring.data_ptr()), P(flag),
                    P(steps_out.data_ptr() + 4 * k), F64(brk), I32(cap), I32(1 if k + 1 >= min_configs else 0))
            try:
                _launch(self._coop_fn, self._coop_blocks, self.THREADS, self._stream, args, cooperative=True)
            except cupy.cuda.driver.CUDADriverError as exc:
                # e.g. the GPU is shared (MPS) and our blocks no longer fit at once: go on per step
                warnings.warn(f"PLAS: cooperative launch failed ({exc}); one launch per step from now on")
                self._coop_blocks = 0
                run_level_stepwise(self, grid, order, target, r, block, draws[k:], brk,
                                   max(0, min_configs - k), cap, steps_out[k:])
                return


def _cooperative(mod, threads: int, device: torch.device) -> tuple[int, int]:
    """(function handle, blocks) for the persistent config kernel, or (0, 0) where this device or
    CuPy cannot do a cooperative launch: the grid is as many blocks as fit on the GPU at once,
    which a cooperative launch guarantees to be resident together (the grid barrier needs it)."""
    try:
        idx = cuda_index(device)
        if not torch.cuda.get_device_properties(idx).major >= 6:
            return 0, 0
        attr = getattr(cupy.cuda.runtime, "cudaDevAttrCooperativeLaunch", 95)
        if not cupy.cuda.runtime.deviceGetAttribute(attr, idx):
            return 0, 0
        fn = mod.get_function("plas_config_steps").kernel.ptr
        per_sm = cupy.cuda.driver.occupancyMaxActiveBlocksPerMultiprocessor(fn, threads, 0)
        return fn, per_sm * torch.cuda.get_device_properties(idx).multi_processor_count
    except (AttributeError, cupy.cuda.driver.CUDADriverError, cupy.cuda.runtime.CUDARuntimeError):
        return 0, 0
