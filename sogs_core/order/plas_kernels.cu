// PLAS target and group-step kernels (sogs_core/order/plas_cuda.py compiles them with NVRTC).
// Placeholders __CP__, __MASK_CH__, __STORE_HALF__, __PERMS__, __MIX_A__, __MIX_B__ are filled in
// by plas_cuda.kernel_source before compiling.
#define CP __CP__
#define NQ (CP / 4)
#define STORE_HALF __STORE_HALF__

// Rows are stored as NQ quads of four channels: float4, or four halves (uint2) with STORE_HALF,
// which halves the bytes a step moves; all arithmetic is float32 either way.
#if STORE_HALF
#include <cuda_fp16.h>
typedef uint2 row_quad;
__device__ __forceinline__ float4 unpack(const uint2 u) {
    const float2 a = __half22float2(*reinterpret_cast<const __half2*>(&u.x));
    const float2 b = __half22float2(*reinterpret_cast<const __half2*>(&u.y));
    return make_float4(a.x, a.y, b.x, b.y);
}
__device__ __forceinline__ float4 unpack_raw(const uint2 u) { return unpack(u); }
__device__ __forceinline__ float4 ldq(const uint2* p) { return unpack(*p); }
__device__ __forceinline__ float4 ldq_ro(const uint2* p) { return unpack(__ldg(p)); }
__device__ __forceinline__ void stq(uint2* p, const float4 v) {
    const __half2 a = __floats2half2_rn(v.x, v.y), b = __floats2half2_rn(v.z, v.w);
    uint2 u;
    u.x = *reinterpret_cast<const unsigned int*>(&a);
    u.y = *reinterpret_cast<const unsigned int*>(&b);
    *p = u;
}
#else
typedef float4 row_quad;
__device__ __forceinline__ float4 unpack_raw(const float4 u) { return u; }
__device__ __forceinline__ float4 ldq(const float4* p) { return *p; }
__device__ __forceinline__ float4 ldq_ro(const float4* p) { return __ldg(p); }
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

// Four lanes per group: lane k of a quad of lanes owns cell k of group t (it runs the bijection
// for its cell only, loads its own row, and scores it against the four targets), the quad swaps
// its 4 x 4 distances with shuffles, lane k scores the 6 assignments that send element 0 to cell
// k, the quad keeps the first minimum (the identity on ties, then the lowest index: the torch
// step's argmin), and each lane writes its own row to its new cell. Grid rows and order are read
// through L2 (__ldcg): in the persistent kernel other blocks wrote them during the previous step,
// and L1 is not coherent between SMs. One thread per group needed ~130 registers (2 blocks per
// SM); a lane needs 72 (fp16), and the step got ~20 % faster at block 4 (bench/NOTES.md).
// Every lane of the warp must call this (shuffles), active or not.
__device__ __forceinline__ void quad_swap(
        const unsigned int t, const bool active, row_quad* grid, int* order,
        const row_quad* __restrict__ target, const int h, const int w, const int n, const int B,
        const int nbx, const unsigned int gpb, const int sy, const int sx, const unsigned int k0,
        const unsigned int k1, const unsigned int k2, const unsigned int k3, const int half,
        double& before, double& after) {
    const unsigned int FULL = 0xffffffffu;
    const int k = threadIdx.x & 3;
    int cell = 0, ok = 0;
    if (active) {
        const unsigned int m = (unsigned int)(B * B);
        const unsigned int mask = (1u << half) - 1u;
        const unsigned int blk = t / gpb;
        const unsigned int g = t - blk * gpb;
        const int by = (int)(blk / (unsigned int)nbx), bx = (int)(blk - (unsigned int)by * (unsigned int)nbx);
        unsigned int p = 4u * g + (unsigned int)k;
        do { p = feistel(p, half, mask, k0, k1, k2, k3); } while (p >= m);
        int row = by * B + (int)(p / (unsigned int)B) + sy;
        int col = bx * B + (int)(p % (unsigned int)B) + sx;
        if (row >= h) row -= h;
        if (col >= w) col -= w;
        cell = row * w + col;
        ok = cell < n;
    }
    ok &= __shfl_xor_sync(FULL, ok, 1);
    ok &= __shfl_xor_sync(FULL, ok, 2);
    int c[4];
#pragma unroll
    for (int j = 0; j < 4; ++j) c[j] = __shfl_sync(FULL, cell, j, 4);
    float d[4] = {0.f, 0.f, 0.f, 0.f};
    row_quad xr[NQ];
    int o = 0;
    if (ok) {
        const row_quad* xp = grid + (long long)cell * NQ;
#pragma unroll
        for (int q = 0; q < NQ; ++q) xr[q] = __ldcg(xp + q);
        o = __ldcg(order + cell);
#pragma unroll
        for (int q = 0; q < NQ; ++q) {
            const float4 xv = unpack_raw(xr[q]);
#pragma unroll
            for (int j = 0; j < 4; ++j) {
                const float4 tv = ldq_ro(target + (long long)c[j] * NQ + q);
                float a = xv.x - tv.x, b = xv.y - tv.y, cc = xv.z - tv.z, e = xv.w - tv.w;
                float s = d[j];
                s = fmaf(a, a, s); s = fmaf(b, b, s); s = fmaf(cc, cc, s); s = fmaf(e, e, s);
                d[j] = s;
            }
        }
    }
    // D[i][j]: element i (lane i) at cell j
    float D[4][4];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) D[i][j] = __shfl_sync(FULL, d[j], i, 4);
    // lane k scores permutations 6k .. 6k+5: element 0 to cell k, elements 1-3 to the other
    // cells (o0 < o1 < o2) in lexicographic order; sums added in the torch step's order
    const float d0 = k == 0 ? D[0][0] : k == 1 ? D[0][1] : k == 2 ? D[0][2] : D[0][3];
    float R[3][3];
#pragma unroll
    for (int i = 0; i < 3; ++i) {
        R[i][0] = k == 0 ? D[i + 1][1] : D[i + 1][0];
        R[i][1] = k <= 1 ? D[i + 1][2] : D[i + 1][1];
        R[i][2] = k <= 2 ? D[i + 1][3] : D[i + 1][2];
    }
    const int L[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
    float best_cost = d0 + R[0][0] + R[1][1] + R[2][2];
    int best = 6 * k;
#pragma unroll
    for (int u = 1; u < 6; ++u) {
        const float cst = d0 + R[0][L[u][0]] + R[1][L[u][1]] + R[2][L[u][2]];
        if (cst < best_cost) { best_cost = cst; best = 6 * k + u; }
    }
    // first minimum over the quad: lower cost, or equal cost and lower index
#pragma unroll
    for (int off = 1; off < 4; off <<= 1) {
        const float oc = __shfl_xor_sync(FULL, best_cost, off);
        const int ob = __shfl_xor_sync(FULL, best, off);
        if (oc < best_cost || (oc == best_cost && ob < best)) { best_cost = oc; best = ob; }
    }
    const float ident = D[0][0] + D[1][1] + D[2][2] + D[3][3];
    if (ok && k == 0) { before += (double)ident; after += (double)best_cost; }
    __syncwarp();          // every lane's loads of this quad's rows are done before any write
    if (ok && best != 0) {
        const int dest = c[PERM[best][k]];
        row_quad* out = grid + (long long)dest * NQ;
#pragma unroll
        for (int q = 0; q < NQ; ++q) out[q] = xr[q];
        order[dest] = o;
    }
}

// Adds the block's before/after sums to dst[0], dst[1] (two atomics per block).
__device__ __forceinline__ void block_add2(double before, double after, double* dst) {
    __shared__ double red[2][32];
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
        if (lane == 0) { atomicAdd(dst, before); atomicAdd(dst + 1, after); }
    }
}

// One step: one thread per group; sums must be zero on entry.
// __launch_bounds__(256, 1): NVRTC then keeps every load of a lane in flight (72 registers at
// fp16, 3 blocks per SM); with (256) alone it packs 48 registers, 5 blocks, and the step was
// 15-60 % slower (bench/NOTES.md, session 4).
extern "C" __global__ void __launch_bounds__(256, 1) plas_group_step(
        row_quad* grid, int* order, const row_quad* __restrict__ target,
        const int h, const int w, const int n, const int B, const int nbx,
        const long long total_groups, const int sy, const int sx,
        const unsigned int k0, const unsigned int k1, const unsigned int k2, const unsigned int k3,
        const int half, double* __restrict__ sums) {
    double before = 0.0, after = 0.0;
    const unsigned long long u = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
    quad_swap((unsigned int)(u >> 2), (long long)(u >> 2) < total_groups, grid, order, target, h, w, n,
              B, nbx, (unsigned int)(B * B) / 4u, sy, sx, k0, k1, k2, k3, half, before, after);
    block_add2(before, after, sums);
}

// Control words shared by the kernels of one sort (unsigned ints, zero at the start):
#define CTRL_LEVEL_DONE 0   // set when a config of the level gained nothing: later configs skip
#define CTRL_BAR_COUNT 1    // grid barrier: blocks arrived
#define CTRL_BAR_GEN 2      // grid barrier: generation
#define CTRL_RING 3         // the slot of the sums ring that is zero for the next step
#define RING 3

__device__ __forceinline__ unsigned int ld_volatile(const unsigned int* p) {
    return *(const volatile unsigned int*)p;
}

// All blocks of a cooperative launch (so all resident) wait here for each other. Every thread
// fences its own writes first; the last block to arrive resets the count and opens the next
// generation.
__device__ __forceinline__ void grid_barrier(unsigned int* ctrl) {
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) {
        const unsigned int gen = ld_volatile(ctrl + CTRL_BAR_GEN);
        __threadfence();
        if (atomicAdd(ctrl + CTRL_BAR_COUNT, 1u) == gridDim.x - 1u) {
            atomicExch(ctrl + CTRL_BAR_COUNT, 0u);
            __threadfence();
            atomicAdd(ctrl + CTRL_BAR_GEN, 1u);
        } else {
            while (ld_volatile(ctrl + CTRL_BAR_GEN) == gen) { }
        }
        __threadfence();
    }
    __syncthreads();
}

// Step keys: step s of a config with base keys b uses mix32(s, b_j), the same as
// plas_sort.step_keys on the host.
// A whole config in one cooperative launch: steps against the same target until a step's relative
// gain falls under brk (or cap steps), with a grid barrier after each step so that every block reads
// the same sums and takes the same decision. The host never waits on a step. Writes the number
// of steps to *steps_out (0 when skipped) and, when may_end and the first step already gained
// less than brk, marks the level done so that its remaining configs skip.
extern "C" __global__ void __launch_bounds__(256, 1) plas_config_steps(
        row_quad* grid, int* order, const row_quad* __restrict__ target,
        const int h, const int w, const int n, const int B, const int nbx,
        const long long total_groups, const int sy, const int sx,
        const unsigned int b0, const unsigned int b1, const unsigned int b2, const unsigned int b3,
        const int half, double* sums, unsigned int* ctrl, int* steps_out,
        const double brk, const int cap, const int may_end) {
    __shared__ unsigned int head[2];
    if (threadIdx.x == 0) { head[0] = ld_volatile(ctrl + CTRL_LEVEL_DONE); head[1] = ld_volatile(ctrl + CTRL_RING); }
    __syncthreads();
    const bool first_thread = blockIdx.x == 0 && threadIdx.x == 0;
    if (head[0]) {
        if (first_thread) *steps_out = 0;
        return;
    }
    const unsigned int ring = head[1];
    const unsigned int gpb = (unsigned int)(B * B) / 4u;
    const long long stride = (long long)gridDim.x * blockDim.x;
    int s = 0;
    for (;;) {
        const unsigned int k0 = mix32((unsigned int)s, b0), k1 = mix32((unsigned int)s, b1);
        const unsigned int k2 = mix32((unsigned int)s, b2), k3 = mix32((unsigned int)s, b3);
        double before = 0.0, after = 0.0;
        // lanes of a warp loop together (the shuffles need every lane): stride is a multiple of 32
        const long long lanes_total = total_groups * 4;
        for (long long u = (long long)blockIdx.x * blockDim.x + threadIdx.x;
             u - (threadIdx.x & 31) < lanes_total; u += stride)
            quad_swap((unsigned int)(u >> 2), u < lanes_total, grid, order, target, h, w, n, B, nbx, gpb,
                      sy, sx, k0, k1, k2, k3, half, before, after);
        double* slot = sums + 2 * ((ring + (unsigned int)s) % RING);
        block_add2(before, after, slot);
        // the slot after this one was last read after the barrier two steps ago: clear it now
        if (first_thread) {
            double* next = sums + 2 * ((ring + (unsigned int)s + 1u) % RING);
            next[0] = 0.0; next[1] = 0.0;
        }
        grid_barrier(ctrl);
        const double b = *(volatile double*)slot, a = *(volatile double*)(slot + 1);
        const double gain = b > 0.0 ? (b - a) / b : 0.0;
        ++s;
        if (gain < brk || s >= cap) break;
    }
    if (first_thread) {
        *steps_out = s;
        if (s == 1 && may_end) ctrl[CTRL_LEVEL_DONE] = 1u;
        ctrl[CTRL_RING] = (ring + (unsigned int)s) % RING;   // cleared before the last barrier
    }
}

// The target kernels return at once when the flag at ctrl (the level-done word) is set.
__device__ __forceinline__ bool skipped(const unsigned int* ctrl) {
    return ctrl != nullptr && ld_volatile(ctrl);
}

// Summed-area table in three passes per axis, each lane (a row or column of one float4 quad)
// cut into chunks of L so that ~100k threads share the work: chunk totals, an exclusive scan of
// the totals per lane, then each chunk's running sum from its offset. Lane i's element j lies at
// float4 index (i / NQ) * outer + (i % NQ) + j * step.
// This thread's chunk of a scan: its lane, the chunk index c, elements [j0, j1) and the lane's base index;
// false when the thread has no chunk.
struct ScanChunk { int lane, c, j0, j1; long long base; };
__device__ __forceinline__ bool scan_chunk(const int lanes, const long long outer, const int len,
                                           const int L, ScanChunk& k) {
    const long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    const int nc = (len + L - 1) / L;
    if (t >= (long long)lanes * nc) return false;
    k.lane = (int)(t % lanes);
    k.c = (int)(t / lanes);
    k.base = (long long)(k.lane / NQ) * outer + k.lane % NQ;
    k.j0 = k.c * L;
    k.j1 = min(len, k.j0 + L);
    return true;
}

#define SCAN_TOTALS(NAME, SRC_T, LOAD) \
extern "C" __global__ void NAME(const SRC_T* __restrict__ src, float4* __restrict__ tot, \
        const int lanes, const long long outer, const long long step, const int len, const int L, \
        const unsigned int* ctrl) { \
    ScanChunk k; \
    if (skipped(ctrl) || !scan_chunk(lanes, outer, len, L, k)) return; \
    float4 s = make_float4(0.f, 0.f, 0.f, 0.f); \
    for (int j = k.j0; j < k.j1; ++j) { \
        const float4 v = LOAD(src + k.base + j * step); \
        s.x += v.x; s.y += v.y; s.z += v.z; s.w += v.w; \
    } \
    tot[(long long)k.c * lanes + k.lane] = s; \
}
SCAN_TOTALS(scan_totals_grid, row_quad, ldq)
SCAN_TOTALS(scan_totals_sat, float4, ldf)

extern "C" __global__ void scan_chunk_offsets(float4* __restrict__ tot, const int lanes, const int nc,
                                               const unsigned int* ctrl) {
    if (skipped(ctrl)) return;
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
        const int len, const int L, const unsigned int* ctrl) { \
    ScanChunk k; \
    if (skipped(ctrl) || !scan_chunk(lanes, outer, len, L, k)) return; \
    float4 s = tot[(long long)k.c * lanes + k.lane]; \
    for (int j = k.j0; j < k.j1; ++j) { \
        const float4 v = LOAD(src + k.base + j * step); \
        s.x += v.x; s.y += v.y; s.z += v.z; s.w += v.w; \
        dst[k.base + j * step] = s; \
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
                                           const int h, const int w, const int r,
                                           const unsigned int* ctrl) {
    if (skipped(ctrl)) return;
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
