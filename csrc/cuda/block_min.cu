// The exact half of block_min: direct-form values with `warp_sqdist`, the same
// summation as the FPS steps. The GEMM-form candidates come from cuBLAS (via
// torch) in hminsel/cuda/kernels.py; these kernels certify and redo them.
#include "hminsel.cuh"

// direct_min: for each of n rows x[ids[i]], the nearest of the m rows of y.
//
// x rows `sx` apart, y rows `sy` apart, both d wide; ids (n,) int64. One warp a
// row (grid-stride over rows), the centers in order, so a strict `<` keeps the
// lowest index on ties. self_mask: row ids[i] of x never matches row ids[i] of y
// (y is x). Writes value (n,) fp32 and index (n,) int64 (-1 when nothing matched).
template <typename T>
__device__ __forceinline__ void direct_min(const T* __restrict__ x, const i64* __restrict__ ids,
                                           i64 n, const T* __restrict__ y, i64 m, int d, i64 sx,
                                           i64 sy, int self_mask, int vec, float* value,
                                           i64* index) {
    const int lane = threadIdx.x & 31;
    const i64 warps = (i64)gridDim.x * (blockDim.x >> 5);
    for (i64 i = (i64)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5); i < n; i += warps) {
        const i64 row = ids[i];
        float best = __int_as_float(0x7f800000);  // +inf
        i64 arg = -1;
        for (i64 j = 0; j < m; ++j) {
            if (self_mask && j == row) continue;
            const float dist = warp_sqdist<T>(x + row * sx, y + j * sy, d, lane, vec != 0);
            if (dist_less(dist, best) || arg < 0) {
                best = dist;
                arg = j;
            }
        }
        if (lane == 0) {
            value[i] = best;
            index[i] = arg;
        }
    }
}

// pair_dist: value[i] = |x[ids[i]] - y[cand[i]]|^2 for n pairs, one warp a pair.
template <typename T>
__device__ __forceinline__ void pair_dist(const T* __restrict__ x, const i64* __restrict__ ids,
                                          const T* __restrict__ y, const i64* __restrict__ cand,
                                          i64 n, int d, i64 sx, i64 sy, int vec, float* value) {
    const int lane = threadIdx.x & 31;
    const i64 warps = (i64)gridDim.x * (blockDim.x >> 5);
    for (i64 i = (i64)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5); i < n; i += warps) {
        const float dist = warp_sqdist<T>(x + ids[i] * sx, y + cand[i] * sy, d, lane, vec != 0);
        if (lane == 0) value[i] = dist;
    }
}

#define HMINSEL_BLOCK_MIN(NAME, T)                                                             \
    extern "C" __global__ void __launch_bounds__(HMINSEL_THREADS, 1) direct_min_##NAME(          \
        const T* x, const i64* ids, i64 n, const T* y, i64 m, int d, i64 sx, i64 sy,            \
        int self_mask, int vec, float* value, i64* index) {                                    \
        direct_min<T>(x, ids, n, y, m, d, sx, sy, self_mask, vec, value, index);                \
    }                                                                                          \
    extern "C" __global__ void __launch_bounds__(HMINSEL_THREADS, 1) pair_dist_##NAME(           \
        const T* x, const i64* ids, const T* y, const i64* cand, i64 n, int d, i64 sx, i64 sy,  \
        int vec, float* value) {                                                               \
        pair_dist<T>(x, ids, y, cand, n, d, sx, sy, vec, value);                                \
    }
HMINSEL_FOR_TYPES(HMINSEL_BLOCK_MIN)
