// Greedy FPS steps, many in one launch: the persistent kernel of the CUDA backend.
#include "hminsel.cuh"

#define HMINSEL_MARK (-1.0f)
// Rows a warp folds at once and chunks of each row a lane loads before using them:
// 4 x 1 16-byte loads in flight a lane whatever d, 32 KB an SM at 512 threads (see
// warp_sqdist_rows). 84-96 registers under nvcc 13 (sm_90a); 8 rows spill.
#define FOLD_ROWS 4
#define FOLD_CHUNKS 1
#define KEY_SLOT 31  // scratch word of the step's key (block_max uses one a warp, at most 16)

// fps_run: `count` FPS steps over the rows of x, back to back, in one launch.
//
// x (n, d) rows `stride` elements apart; mind (n,) fp32 min-distances (+inf,
// >= 0, or MARK), updated in place; ring (count + 1,) int64 packed keys. Step t
// reads its center from ring[t] (key_index), marks it, folds its row into
// mind, and atomicMax-es the key of the farthest row into ring[t + 1] (which
// the host zeroed). A zero key (every row marked) ends the loop.
//
// Gate, for the lazy FPS's head loop: step t runs only if its center's key,
// with the low half taken over gidx[c] (the global index; `use_gidx` = 0: c
// itself), beats tau_key; the streaming path passes -1. Rows must then be
// sorted by gidx, so that positions break ties as global indices do. A step
// that does not run ends the loop (the host counts the keys that pass).
//
// Block b owns rows [b rpb, (b + 1) rpb) with rpb = ceil(n / gridDim.x); its
// first `res` owned rows are copied once into shared memory and read from
// there every step (on-chip residency), the rest stream from HBM/L2. One warp
// FOLD_ROWS rows at a time (`warp_sqdist_rows`, FOLD_ROWS x FOLD_CHUNKS 16-byte
// loads in flight a lane), 16 warps a block, one atomicMax a block a step, then
// `grid_barrier`. count > 1 needs a cooperative launch (every block resident);
// count = 1 skips the barrier, so any grid works (the one-launch-a-step path).
//
// Thread 0 reads the step's key (from L2) and hands it to the block through
// shared memory: 16 warps of 132 blocks reading one L2 line each step cost
// about a microsecond.
//
// Dynamic shared memory: the center row as T (raw elements, so a lane's loads of
// it are the 16-byte chunks of its own elements: no bank conflicts), 32 int64 of
// scratch, then res x d elements of T: ceil16(d sizeof(T)) + 256 + res d sizeof(T)
// bytes.
template <typename T>
__device__ __forceinline__ void fps_run(const T* __restrict__ x, i64 n, int d, i64 stride,
                                        float* __restrict__ mind, const i64* __restrict__ gidx,
                                        int use_gidx, i64* ring, int count, i64 tau_key, int res,
                                        int vec, unsigned* bar) {
    extern __shared__ __align__(16) unsigned char smem[];
    T* center = reinterpret_cast<T*>(smem);
    i64* scratch = reinterpret_cast<i64*>(smem + ((i64)d * sizeof(T) + 15) / 16 * 16);
    T* rows = reinterpret_cast<T*>(reinterpret_cast<unsigned char*>(scratch) + 32 * sizeof(i64));

    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    const i64 rpb = (n + gridDim.x - 1) / gridDim.x;
    const i64 r0 = (i64)blockIdx.x * rpb;
    const i64 nr = r0 < n ? (n - r0 < rpb ? n - r0 : rpb) : 0;
    const i64 nres = res < nr ? res : nr;
    const bool vec_s = d % Vec<T>::N == 0;  // rows in shared memory are 16-byte aligned then

    if (vec && vec_s) {  // residency: one read of x, 16 bytes a thread
        const int units = d / Vec<T>::N;
        for (i64 i = threadIdx.x; i < nres * units; i += blockDim.x) {
            const i64 r = i / units, u = i - r * units;
            reinterpret_cast<uint4*>(rows)[i] =
                reinterpret_cast<const uint4*>(x + (r0 + r) * stride)[u];
        }
    } else {
        for (i64 i = threadIdx.x; i < nres * d; i += blockDim.x) {
            const i64 r = i / d, e = i - r * d;
            rows[i] = x[(r0 + r) * stride + e];
        }
    }
    for (int t = 0; t < count; ++t) {
        if (threadIdx.x == 0) scratch[KEY_SLOT] = load_shared_word(ring + t);
        __syncthreads();  // also: every thread is done with the previous center
        const i64 key = scratch[KEY_SLOT];
        if (key == 0) break;
        const i64 c = key_index(key);
        const i64 gid = use_gidx ? gidx[c] : c;
        if ((((key >> 32) << 32) | (KEY_LOW - gid)) <= tau_key) break;
        for (int e = threadIdx.x; e < d; e += blockDim.x) center[e] = x[c * stride + e];
        __syncthreads();  // the key is read (thread 0 may write the next one) and the center is in
        i64 best = 0;
        // FOLD_ROWS rows a warp at once (rows r, r + nwarps, ...): their loads go out
        // together (warp_sqdist_rows); rows past `hi` repeat row r and are dropped.
        auto fold = [&](i64 r, i64 hi, const T* base, i64 rstride, bool v) {
            const T* p[FOLD_ROWS];
            float old[FOLD_ROWS], dist[FOLD_ROWS];
#pragma unroll
            for (int i = 0; i < FOLD_ROWS; ++i) {
                const i64 ri = r + i * nwarps < hi ? r + i * nwarps : r;
                p[i] = base + ri * rstride;
                old[i] = lane == 0 ? mind[r0 + ri] : 0.0f;  // issued before the distances
            }
            warp_sqdist_rows<T, FOLD_ROWS, FOLD_CHUNKS>(p, center, d, lane, v, dist);
#pragma unroll
            for (int i = 0; i < FOLD_ROWS; ++i) {
                const i64 row = r0 + r + i * nwarps;
                if (lane == 0 && r + i * nwarps < hi) {
                    const float m = row == c ? HMINSEL_MARK
                                             : (old[i] >= 0.0f && dist_less(dist[i], old[i]) ? dist[i] : old[i]);
                    if (__float_as_int(m) != __float_as_int(old[i])) mind[row] = m;
                    const i64 k = pack_key(m, row);
                    best = k > best ? k : best;
                }
            }
        };
        // Two loops, so each load knows its memory space: rows [0, nres) from shared memory,
        // [nres, nr) from x.
        for (i64 r = warp; r < nres; r += FOLD_ROWS * nwarps) fold(r, nres, rows, d, vec_s);
        for (i64 r = nres + warp; r < nr; r += FOLD_ROWS * nwarps) fold(r, nr, x + r0 * stride, stride, vec != 0);
        best = block_max(best, scratch);
        if (threadIdx.x == 0 && best > 0) atomicMax(ring + t + 1, best);
        if (t + 1 < count) grid_barrier(bar);
    }
}

#define HMINSEL_FPS_RUN(NAME, T)                                                              \
    extern "C" __global__ void __launch_bounds__(HMINSEL_THREADS, 1) fps_run_##NAME(          \
        const T* x, i64 n, int d, i64 stride, float* mind, const i64* gidx, int use_gidx,      \
        i64* ring, int count, i64 tau_key, int res, int vec, unsigned* bar) {                  \
        fps_run<T>(x, n, d, stride, mind, gidx, use_gidx, ring, count, tau_key, res, vec, bar); \
    }
HMINSEL_FOR_TYPES(HMINSEL_FPS_RUN)
