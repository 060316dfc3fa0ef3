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
// `mode` (bits; 0 = as above): on the H200 a step of 20k x 768 fp16 with every
// row on chip took 8.9 us, where reading the rows from shared memory takes about
// one: the rest is a chain of dependent L2 round trips (the barrier's fence,
// atomicAdd, atomicExch and generation poll; the key; the centre; each row's old
// min-distance). Two ways to shorten it, for the benchmark to compare:
//   MODE_EXCHANGE: in place of the barrier and the key read, each block stores its
//     best key in slots[(t & 1) G + b] and then flags[b] = t + 1 (release); warp 0
//     of every block waits until every flag is past t and takes the max of the slots
//     (`exchange_max`): one round of stores and polls. (The ring still gets each
//     step's key for the host.) flags (G words) start at zero.
//   MODE_SHARED_MIND: the resident rows' min-distances live in shared memory for
//     the launch (read in, written back at its end).
//
// Dynamic shared memory: the center row as T (raw elements, so a lane's loads of
// it are the 16-byte chunks of its own elements: no bank conflicts), 32 int64 of
// scratch, with MODE_SHARED_MIND res floats (to 16 bytes), then res x d elements
// of T: ceil16(d sizeof(T)) + 256 [+ ceil16(4 res)] + res d sizeof(T) bytes.
#define MODE_EXCHANGE 1
#define MODE_SHARED_MIND 2

// The step's key by exchange (MODE_EXCHANGE): `best` is this block's (valid in
// thread 0); the grid's max lands in scratch[KEY_SLOT], read after a __syncthreads.
// A block reaches step t + 2's store into slots[t & 1] only after every block
// flagged t + 2, that is, after every block read step t's slots: two buffers do.
__device__ __forceinline__ void exchange_max(i64 best, i64* slots, unsigned* flags, int t,
                                             i64* scratch) {
    const int lane = threadIdx.x & 31;
    i64* mine = slots + (i64)(t & 1) * gridDim.x;
    if (threadIdx.x == 0) {
        *(volatile i64*)(mine + blockIdx.x) = best;
        __threadfence();  // the key before the flag
        atomicExch(flags + blockIdx.x, (unsigned)(t + 1));
    }
    if (threadIdx.x < 32) {
        for (int b = lane; b < (int)gridDim.x; b += 32)
            while (*(volatile unsigned*)(flags + b) <= (unsigned)t) __nanosleep(20);
        __threadfence();  // the flags seen before the keys are read
        i64 key = 0;
        for (int b = lane; b < (int)gridDim.x; b += 32) {
            const i64 k = *(volatile i64*)(mine + b);
            key = k > key ? k : key;
        }
        key = warp_max(key);
        if (lane == 0) scratch[KEY_SLOT] = key;
    }
}

template <typename T>
__device__ __forceinline__ void fps_run(const T* __restrict__ x, i64 n, int d, i64 stride,
                                        float* __restrict__ mind, const i64* __restrict__ gidx,
                                        int use_gidx, i64* ring, int count, i64 tau_key, int res,
                                        int vec, unsigned* bar, int mode, unsigned* flags,
                                        i64* slots) {
    extern __shared__ __align__(16) unsigned char smem[];
    T* center = reinterpret_cast<T*>(smem);
    i64* scratch = reinterpret_cast<i64*>(smem + ((i64)d * sizeof(T) + 15) / 16 * 16);
    float* smind = reinterpret_cast<float*>(reinterpret_cast<unsigned char*>(scratch) + 32 * sizeof(i64));
    const bool shared_mind = (mode & MODE_SHARED_MIND) != 0, exchange = (mode & MODE_EXCHANGE) != 0;
    T* rows = reinterpret_cast<T*>(reinterpret_cast<unsigned char*>(smind) +
                                   (shared_mind ? ((i64)res * 4 + 15) / 16 * 16 : 0));

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
    if (shared_mind)
        for (i64 i = threadIdx.x; i < nres; i += blockDim.x) smind[i] = mind[r0 + i];
    for (int t = 0; t < count; ++t) {
        // (MODE_EXCHANGE: from step 1 on, exchange_max put the key there)
        if (threadIdx.x == 0 && (t == 0 || !exchange)) scratch[KEY_SLOT] = load_shared_word(ring + t);
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
        // rows r, r + nwarps, ... of this block; `md` their min-distances (indexed as the rows)
        auto fold = [&](i64 r, i64 hi, const T* base, i64 rstride, bool v, float* md) {
            const T* p[FOLD_ROWS];
            float old[FOLD_ROWS], dist[FOLD_ROWS];
#pragma unroll
            for (int i = 0; i < FOLD_ROWS; ++i) {
                const i64 ri = r + i * nwarps < hi ? r + i * nwarps : r;
                p[i] = base + ri * rstride;
                old[i] = lane == 0 ? md[ri] : 0.0f;  // issued before the distances
            }
            warp_sqdist_rows<T, FOLD_ROWS, FOLD_CHUNKS>(p, center, d, lane, v, dist);
#pragma unroll
            for (int i = 0; i < FOLD_ROWS; ++i) {
                const i64 row = r0 + r + i * nwarps;
                if (lane == 0 && r + i * nwarps < hi) {
                    const float m = row == c ? HMINSEL_MARK
                                             : (old[i] >= 0.0f && dist_less(dist[i], old[i]) ? dist[i] : old[i]);
                    if (__float_as_int(m) != __float_as_int(old[i])) md[r + i * nwarps] = m;
                    const i64 k = pack_key(m, row);
                    best = k > best ? k : best;
                }
            }
        };
        // Two loops, so each load knows its memory space: rows [0, nres) from shared memory,
        // [nres, nr) from x.
        // (two call sites, so that each knows where the min-distances live: shared or global
        // loads, not generic ones)
        if (shared_mind)
            for (i64 r = warp; r < nres; r += FOLD_ROWS * nwarps) fold(r, nres, rows, d, vec_s, smind);
        else
            for (i64 r = warp; r < nres; r += FOLD_ROWS * nwarps) fold(r, nres, rows, d, vec_s, mind + r0);
        for (i64 r = nres + warp; r < nr; r += FOLD_ROWS * nwarps)
            fold(r, nr, x + r0 * stride, stride, vec != 0, mind + r0);
        best = block_max(best, scratch);
        if (threadIdx.x == 0 && best > 0) atomicMax(ring + t + 1, best);
        if (t + 1 < count) {
            if (exchange) exchange_max(best, slots, flags, t, scratch);
            else grid_barrier(bar);
        }
    }
    if (shared_mind) {
        __syncthreads();  // every fold is done (a break above is the whole block's)
        for (i64 i = threadIdx.x; i < nres; i += blockDim.x) mind[r0 + i] = smind[i];
    }
}

#define HMINSEL_FPS_RUN(NAME, T)                                                              \
    extern "C" __global__ void __launch_bounds__(HMINSEL_THREADS, 1) fps_run_##NAME(          \
        const T* x, i64 n, int d, i64 stride, float* mind, const i64* gidx, int use_gidx,      \
        i64* ring, int count, i64 tau_key, int res, int vec, unsigned* bar, int mode,          \
        unsigned* flags, i64* slots) {                                                         \
        fps_run<T>(x, n, d, stride, mind, gidx, use_gidx, ring, count, tau_key, res, vec, bar, \
                   mode, flags, slots);                                                        \
    }
HMINSEL_FOR_TYPES(HMINSEL_FPS_RUN)
