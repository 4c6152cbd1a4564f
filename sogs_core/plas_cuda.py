"""The PLAS target and group step as two fused CUDA kernels (CuPy RawModule, NVRTC at first use).

Why: the torch step spends ~15 launches and several full passes over memory per step, and a
1024 x 1024 sort runs thousands of steps. Here one thread owns one group of four cells: it finds
its cells through the same keyed Feistel bijection as `plas_sort.block_permutation`, loads the
four feature rows and the four target rows (float4 loads), scores the 24 assignments, writes the
winner back in place (groups are disjoint) and adds the before/after cost to the step's sums.
The target is a summed-area table (chunked scans along x, then y: three small kernels per axis)
turned into the normalised box mean by a fourth; torch's cumsum along the outer axes of a
(1024, 1024, 16) tensor took ~1 ms here, these ~0.3 ms (bench/plas_bench.py --micro).

Import fails (ImportError) where CuPy is missing; `plas_sort` then uses the torch step.
"""
from __future__ import annotations

import threading

import cupy  # noqa: F401  (ImportError here selects the torch backend)
import numpy as np
import torch

from .plas_sort import MIX_A, MIX_B, PERMS_4, feistel_half_bits

_SOURCE = r"""
#define CP __CP__
#define NQ (CP / 4)
#define STORE_HALF __STORE_HALF__

// Rows are stored as NQ quads of four channels: float4, or four halves (uint2) with STORE_HALF,
// which halves the bytes a step moves; all arithmetic is float32 either way.
#if STORE_HALF
#include <cuda_fp16.h>
typedef uint2 row_quad;
__device__ __forceinline__ float4 ldq(const uint2* p) {
    const uint2 u = *p;
    const float2 a = __half22float2(*reinterpret_cast<const __half2*>(&u.x));
    const float2 b = __half22float2(*reinterpret_cast<const __half2*>(&u.y));
    return make_float4(a.x, a.y, b.x, b.y);
}
__device__ __forceinline__ void stq(uint2* p, const float4 v) {
    const __half2 a = __floats2half2_rn(v.x, v.y), b = __floats2half2_rn(v.z, v.w);
    uint2 u;
    u.x = *reinterpret_cast<const unsigned int*>(&a);
    u.y = *reinterpret_cast<const unsigned int*>(&b);
    *p = u;
}
#else
typedef float4 row_quad;
__device__ __forceinline__ float4 ldq(const float4* p) { return *p; }
__device__ __forceinline__ void stq(float4* p, const float4 v) { *p = v; }
#endif
__device__ __forceinline__ float4 ldf(const float4* p) { return *p; }
#define MASK_CH __MASK_CH__

__constant__ int PERM[24][4] = {__PERMS__};

__device__ __forceinline__ unsigned int mix32(unsigned int v, unsigned int key) {
    v ^= key;
    v *= __MIX_A__u;
    v ^= v >> 15;
    v *= __MIX_B__u;
    v ^= v >> 12;
    return v;
}

__device__ __forceinline__ unsigned int feistel(unsigned int v, int half, unsigned int mask,
                                                unsigned int k0, unsigned int k1,
                                                unsigned int k2, unsigned int k3) {
    unsigned int l = v >> half, r = v & mask, t;
    t = l ^ (mix32(r, k0) & mask); l = r; r = t;
    t = l ^ (mix32(r, k1) & mask); l = r; r = t;
    t = l ^ (mix32(r, k2) & mask); l = r; r = t;
    t = l ^ (mix32(r, k3) & mask); l = r; r = t;
    return (l << half) | r;
}

extern "C" __global__ void plas_group_step(
        row_quad* __restrict__ grid, int* __restrict__ order, const row_quad* __restrict__ target,
        const int h, const int w, const int n, const int B, const int nbx,
        const long long total_groups, const int sy, const int sx,
        const unsigned int k0, const unsigned int k1, const unsigned int k2, const unsigned int k3,
        const int half, double* __restrict__ sums) {
    __shared__ double red[2][32];
    const unsigned int m = (unsigned int)(B * B);
    const unsigned int gpb = m / 4u;
    const unsigned int mask = (1u << half) - 1u;
    double before = 0.0, after = 0.0;
    const long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (t < total_groups) {
        const int blk = (int)(t / gpb);
        const unsigned int g = (unsigned int)(t - (long long)blk * gpb);
        const int by = blk / nbx, bx = blk - (blk / nbx) * nbx;
        int cell[4];
        bool ok = true;
#pragma unroll
        for (int k = 0; k < 4; ++k) {
            unsigned int p = 4u * g + (unsigned int)k;
            do { p = feistel(p, half, mask, k0, k1, k2, k3); } while (p >= m);
            int row = by * B + (int)(p / (unsigned int)B) + sy;
            int col = bx * B + (int)(p % (unsigned int)B) + sx;
            if (row >= h) row -= h;
            if (col >= w) col -= w;
            cell[k] = row * w + col;
            ok = ok && (cell[k] < n);
        }
        if (ok) {
            float4 x[4][NQ], tg[4][NQ];
#pragma unroll
            for (int k = 0; k < 4; ++k) {
                const row_quad* xp = grid + (long long)cell[k] * NQ;
                const row_quad* tp = target + (long long)cell[k] * NQ;
#pragma unroll
                for (int q = 0; q < NQ; ++q) { x[k][q] = ldq(xp + q); tg[k][q] = ldq(tp + q); }
            }
            float d[4][4];
#pragma unroll
            for (int i = 0; i < 4; ++i) {
#pragma unroll
                for (int j = 0; j < 4; ++j) {
                    float s = 0.f;
#pragma unroll
                    for (int q = 0; q < NQ; ++q) {
                        float a = x[i][q].x - tg[j][q].x, b = x[i][q].y - tg[j][q].y;
                        float c = x[i][q].z - tg[j][q].z, e = x[i][q].w - tg[j][q].w;
                        s = fmaf(a, a, s); s = fmaf(b, b, s); s = fmaf(c, c, s); s = fmaf(e, e, s);
                    }
                    d[i][j] = s;
                }
            }
            const int P[24][4] = {__PERMS__};
            const float ident = d[0][0] + d[1][1] + d[2][2] + d[3][3];
            float best_cost = ident;
            int best = 0;
#pragma unroll
            for (int p = 1; p < 24; ++p) {
                const float c = d[0][P[p][0]] + d[1][P[p][1]] + d[2][P[p][2]] + d[3][P[p][3]];
                if (c < best_cost) { best_cost = c; best = p; }
            }
            before = (double)ident;
            after = (double)best_cost;
            if (best != 0) {
                int o[4];
#pragma unroll
                for (int k = 0; k < 4; ++k) o[k] = order[cell[k]];
#pragma unroll
                for (int i = 0; i < 4; ++i) {
                    const int dest = cell[PERM[best][i]];
                    row_quad* out = grid + (long long)dest * NQ;
#pragma unroll
                    for (int q = 0; q < NQ; ++q) stq(out + q, x[i][q]);
                    order[dest] = o[i];
                }
            }
        }
    }
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) {
        before += __shfl_down_sync(0xffffffffu, before, off);
        after += __shfl_down_sync(0xffffffffu, after, off);
    }
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) { red[0][warp] = before; red[1][warp] = after; }
    __syncthreads();
    if (warp == 0) {
        const int nw = (blockDim.x + 31) >> 5;
        before = lane < nw ? red[0][lane] : 0.0;
        after = lane < nw ? red[1][lane] : 0.0;
#pragma unroll
        for (int off = 16; off > 0; off >>= 1) {
            before += __shfl_down_sync(0xffffffffu, before, off);
            after += __shfl_down_sync(0xffffffffu, after, off);
        }
        if (lane == 0) { atomicAdd(sums, before); atomicAdd(sums + 1, after); }
    }
}

// Summed-area table in three passes per axis, each lane (a row or column of one float4 quad)
// cut into chunks of L so that ~100k threads share the work: chunk totals, an exclusive scan of
// the totals per lane, then each chunk's running sum from its offset. Lane i's element j lies at
// float4 index (i / NQ) * outer + (i % NQ) + j * step.
#define SCAN_TOTALS(NAME, SRC_T, LOAD) \
extern "C" __global__ void NAME(const SRC_T* __restrict__ src, float4* __restrict__ tot, \
        const int lanes, const long long outer, const long long step, const int len, const int L) { \
    const long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x; \
    const int nc = (len + L - 1) / L; \
    if (t >= (long long)lanes * nc) return; \
    const int lane = (int)(t % lanes), c = (int)(t / lanes); \
    const long long base = (long long)(lane / NQ) * outer + lane % NQ; \
    float4 s = make_float4(0.f, 0.f, 0.f, 0.f); \
    const int j1 = min(len, (c + 1) * L); \
    for (int j = c * L; j < j1; ++j) { \
        const float4 v = LOAD(src + base + j * step); \
        s.x += v.x; s.y += v.y; s.z += v.z; s.w += v.w; \
    } \
    tot[(long long)c * lanes + lane] = s; \
}
SCAN_TOTALS(scan_totals_grid, row_quad, ldq)
SCAN_TOTALS(scan_totals_sat, float4, ldf)

extern "C" __global__ void scan_chunk_offsets(float4* __restrict__ tot, const int lanes, const int nc) {
    const int lane = blockIdx.x * blockDim.x + threadIdx.x;
    if (lane >= lanes) return;
    float4 run = make_float4(0.f, 0.f, 0.f, 0.f);
    for (int c = 0; c < nc; ++c) {
        const float4 v = tot[(long long)c * lanes + lane];
        tot[(long long)c * lanes + lane] = run;
        run.x += v.x; run.y += v.y; run.z += v.z; run.w += v.w;
    }
}

#define SCAN_APPLY(NAME, SRC_T, LOAD) \
extern "C" __global__ void NAME(const SRC_T* src, float4* dst, /* dst may be src: no restrict */ \
        const float4* __restrict__ tot, const int lanes, const long long outer, const long long step, \
        const int len, const int L) { \
    const long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x; \
    const int nc = (len + L - 1) / L; \
    if (t >= (long long)lanes * nc) return; \
    const int lane = (int)(t % lanes), c = (int)(t / lanes); \
    const long long base = (long long)(lane / NQ) * outer + lane % NQ; \
    float4 s = tot[(long long)c * lanes + lane]; \
    const int j1 = min(len, (c + 1) * L); \
    for (int j = c * L; j < j1; ++j) { \
        const float4 v = LOAD(src + base + j * step); \
        s.x += v.x; s.y += v.y; s.z += v.z; s.w += v.w; \
        dst[base + j * step] = s; \
    } \
}
SCAN_APPLY(scan_apply_grid, row_quad, ldq)
SCAN_APPLY(scan_apply_sat, float4, ldf)

__device__ __forceinline__ float4 sat_at(const float4* __restrict__ sat, int y, int x, int w, int q) {
    if (y < 0 || x < 0) return make_float4(0.f, 0.f, 0.f, 0.f);
    return __ldg(sat + ((long long)y * w + x) * NQ + q);
}

// sat: (h, w, CP) inclusive prefix sums over both axes; out: the window mean over real cells.
extern "C" __global__ void plas_box_target(const float4* __restrict__ sat, row_quad* __restrict__ out,
                                           const int h, const int w, const int r) {
    const long long cell = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (cell >= (long long)h * w) return;
    const int y = (int)(cell / w), x = (int)(cell - (long long)(cell / w) * w);
    const int y0 = max(y - r, 0) - 1, y1 = min(y + r, h - 1);
    const int x0 = max(x - r, 0) - 1, x1 = min(x + r, w - 1);
    float4 s[NQ];
#pragma unroll
    for (int q = 0; q < NQ; ++q) {
        const float4 A = sat_at(sat, y1, x1, w, q), Bv = sat_at(sat, y0, x1, w, q);
        const float4 C = sat_at(sat, y1, x0, w, q), E = sat_at(sat, y0, x0, w, q);
        s[q] = make_float4(A.x - Bv.x - C.x + E.x, A.y - Bv.y - C.y + E.y,
                           A.z - Bv.z - C.z + E.z, A.w - Bv.w - C.w + E.w);
    }
    const float* sf = reinterpret_cast<const float*>(s);
    const float inv = 1.f / fmaxf(sf[MASK_CH], 0.5f);
    row_quad* o = out + cell * NQ;
#pragma unroll
    for (int q = 0; q < NQ; ++q)
        stq(o + q, make_float4(s[q].x * inv, s[q].y * inv, s[q].z * inv, s[q].w * inv));
}
"""

_modules: dict[tuple[int, int, bool], object] = {}
_lock = threading.Lock()


def kernel_source(cp: int, mask_ch: int, half: bool = False) -> str:
    """The CUDA source for rows of cp channels (a multiple of 4), the mask in channel mask_ch,
    stored as float32 or (half) float16."""
    perms = ", ".join("{" + ", ".join(str(int(v)) for v in row) + "}" for row in PERMS_4.tolist())
    return (_SOURCE.replace("__CP__", str(cp)).replace("__MASK_CH__", str(mask_ch))
            .replace("__STORE_HALF__", "1" if half else "0").replace("__PERMS__", perms)
            .replace("__MIX_A__", hex(MIX_A)).replace("__MIX_B__", hex(MIX_B)))


def _module(cp: int, mask_ch: int, half: bool):
    with _lock:
        mod = _modules.get((cp, mask_ch, half))
        if mod is None:
            mod = cupy.RawModule(code=kernel_source(cp, mask_ch, half), options=("--std=c++14",))
            _modules[(cp, mask_ch, half)] = mod
        return mod


def _ptr(t: torch.Tensor) -> np.uint64:
    """A tensor's device address as the 64-bit kernel argument CuPy packs for a pointer."""
    return np.uint64(t.data_ptr())


class CudaPlasBackend:
    """Same interface and results as plas_sort.TorchPlasBackend, one kernel per step."""

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
        self._step = mod.get_function("plas_group_step")
        self._target = mod.get_function("plas_box_target")
        self._sat = torch.empty(h, w, cp, device=device)
        self._scan = ((mod.get_function("scan_totals_grid"), mod.get_function("scan_apply_grid")),
                      (mod.get_function("scan_totals_sat"), mod.get_function("scan_apply_sat")))
        self._offsets = mod.get_function("scan_chunk_offsets")
        nq = cp // 4
        # (lanes, outer stride, step, length) of the two scans, in float4 units
        self._axes = ((h * nq, w * nq, nq, w), (w * nq, nq, w * nq, h))
        chunks = max((length + self.CHUNK - 1) // self.CHUNK for *_, length in self._axes)
        self._totals = torch.empty(max(lanes for lanes, *_ in self._axes) * chunks * 4, device=device)
        # the torch stream current now runs every kernel of this sort, in order with torch's ops
        self._cstream = cupy.cuda.ExternalStream(torch.cuda.current_stream(device).cuda_stream,
                                                 device.index or 0)
        self._dims = (np.int32(h), np.int32(w), np.int32(n))
        self._cached_key: tuple = ()

    def target(self, grid: torch.Tensor, r: int, out: torch.Tensor) -> None:
        h, w, T, L = self.h, self.w, self.THREADS, self.CHUNK
        sat, tot = self._sat, self._totals
        offsets = self._offsets
        with self._cstream:
            src = grid
            for (totals, apply), (lanes, outer, step, length) in zip(self._scan, self._axes):
                # rows (along x) from the grid, then columns of the row sums, in place
                nc = (length + L - 1) // L
                work = lanes * nc
                args = (np.int32(lanes), np.int64(outer), np.int64(step), np.int32(length), np.int32(L))
                totals(((work + T - 1) // T,), (T,), (_ptr(src), _ptr(tot), *args))
                offsets(((lanes + T - 1) // T,), (T,), (_ptr(tot), np.int32(lanes), np.int32(nc)))
                apply(((work + T - 1) // T,), (T,), (_ptr(src), _ptr(sat), _ptr(tot), *args))
                src = sat
            self._target(((h * w + T - 1) // T,), (T,),
                         (_ptr(sat), _ptr(out), np.int32(h), np.int32(w), np.int32(r)))

    def step(self, grid: torch.Tensor, order: torch.Tensor, target: torch.Tensor, block: int,
             sy: int, sx: int, keys, sums: torch.Tensor) -> None:
        # the arguments before the keys are the same for every step of a config: build them once
        # (a step's host time bounds the sort once the GPU step is ~45 us)
        ck = (grid.data_ptr(), order.data_ptr(), target.data_ptr(), block, sy, sx)
        if self._cached_key != ck:
            nbx = self.w // block
            total = (self.h // block) * nbx * (block * block // 4)
            self._cached_grid = ((total + self.THREADS - 1) // self.THREADS,)
            self._cached_head = (_ptr(grid), _ptr(order), _ptr(target), *self._dims, np.int32(block),
                                 np.int32(nbx), np.int64(total), np.int32(sy), np.int32(sx))
            self._cached_half = np.int32(feistel_half_bits(block * block))
            self._cached_key = ck
        k0, k1, k2, k3 = (np.uint32(k) for k in keys)
        with self._cstream:
            self._step(self._cached_grid, (self.THREADS,),
                       (*self._cached_head, k0, k1, k2, k3, self._cached_half, _ptr(sums)))
