// hminsel's shared CUDA helpers: element loads, the one direct-form distance,
// packed argmax keys (lowest index wins ties), warp/block reductions and a
// grid barrier. Every kernel in csrc/cuda includes this header; the loader
// (hminsel/cuda/loader.py) inlines it for NVRTC, so it includes no other header.
#pragma once

typedef long long i64;
typedef unsigned long long u64;

#define HMINSEL_THREADS 512    // threads a block (16 warps): 128 registers a thread, no spills
#define HMINSEL_WARPS (HMINSEL_THREADS / 32)

static constexpr i64 KEY_LOW = 0xFFFFFFFFLL;  // low half of a key: KEY_LOW - index

// 16-bit storage travels as raw bits (DLPack views float16/bfloat16 tensors as int16).
struct f16_t { unsigned short bits; };
struct bf16_t { unsigned short bits; };

__device__ __forceinline__ float to_f32(float v) { return v; }
__device__ __forceinline__ float to_f32(f16_t v) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(v.bits));
    return f;
}
__device__ __forceinline__ float to_f32(bf16_t v) { return __uint_as_float(((unsigned)v.bits) << 16); }

// IEEE arithmetic whatever the compile flags: CuPy compiles with -ftz=true,
// which would flush subnormal differences and distances to zero (spurious
// ties). Inline PTX without .ftz keeps them; comparisons of distances (all
// >= +0) go through their bit patterns, which order like the values.
__device__ __forceinline__ float sub_rn(float a, float b) {
    float r;
    asm("sub.rn.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b));
    return r;
}
__device__ __forceinline__ float add_rn(float a, float b) {
    float r;
    asm("add.rn.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b));
    return r;
}
__device__ __forceinline__ float fma_rn(float a, float b, float c) {
    float r;
    asm("fma.rn.f32 %0, %1, %2, %3;" : "=f"(r) : "f"(a), "f"(b), "f"(c));
    return r;
}
// a < b for a, b >= +0 (including +inf), exact for subnormals under -ftz.
__device__ __forceinline__ bool dist_less(float a, float b) { return __float_as_int(a) < __float_as_int(b); }

// Elements of T in one 16-byte vector: the unit of the summation order below.
template <typename T> struct Vec { static constexpr int N = 16 / (int)sizeof(T); };

// V elements of T starting at element e of row p, widened to float; a 16-byte
// load when `vec` (p and e * sizeof(T) 16-byte aligned), else element by element.
template <typename T, int V>
__device__ __forceinline__ void load_chunk(const T* __restrict__ p, int e, int d, bool vec, float* out) {
    if (vec) {
        union { uint4 u; T t[V]; } buf;
        buf.u = *reinterpret_cast<const uint4*>(p + e);
#pragma unroll
        for (int j = 0; j < V; ++j) out[j] = to_f32(buf.t[j]);
    } else {
#pragma unroll
        for (int j = 0; j < V; ++j) out[j] = e + j < d ? to_f32(p[e + j]) : 0.0f;
    }
}

// Squared L2 distances of R rows a[0..R-1] to one row b (all T), by one full warp. THE summation order of the backend: element e belongs
// to lane (e / V) % 32 with V = Vec<T>::N; each lane accumulates (a_e - b_e)^2 over
// its elements in increasing e with fused multiply-adds; the lanes then combine by
// an xor butterfly (16, 8, 4, 2, 1), which leaves the same bits in every lane
// (a + b == b + a). Round to nearest, subnormals kept (sub_rn / fma_rn / add_rn).
// Out-of-range elements add exact zeros. So the value does not depend on `vec`,
// on R or U, on where the rows live, or on which kernel asks: lazy == streaming,
// bit for bit.
//
// Loads in flight: a lane issues the loads of U of its chunks of each of the R
// rows (R U 16-byte loads) before the first is used, then accumulates them in the
// order above. At 512 threads a block and one block an SM, R U = 4 keeps 32 KB in
// flight an SM (the step's target, for >= 85% of copy bandwidth on an H100/H200).
template <typename T, int R, int U>
__device__ __forceinline__ void warp_sqdist_rows(const T* const (&a)[R], const T* __restrict__ b,
                                                 int d, int lane, bool vec, float (&out)[R]) {
    constexpr int V = Vec<T>::N, STEP = 32 * V;
    float acc[R];
#pragma unroll
    for (int r = 0; r < R; ++r) acc[r] = 0.0f;
    for (int e0 = lane * V; e0 < d; e0 += U * STEP) {
        float av[U][R][V];
#pragma unroll
        for (int u = 0; u < U; ++u)
#pragma unroll
            for (int r = 0; r < R; ++r)
                if (e0 + u * STEP < d) load_chunk<T, V>(a[r], e0 + u * STEP, d, vec, av[u][r]);
#pragma unroll
        for (int u = 0; u < U; ++u) {
            const int e = e0 + u * STEP;
            if (e >= d) break;
            float bv[V];
            load_chunk<T, V>(b, e, d, vec, bv);
#pragma unroll
            for (int r = 0; r < R; ++r)
#pragma unroll
                for (int j = 0; j < V; ++j) {
                    const float diff = sub_rn(av[u][r][j], bv[j]);
                    acc[r] = fma_rn(diff, diff, acc[r]);
                }
        }
    }
#pragma unroll
    for (int r = 0; r < R; ++r) {
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) acc[r] = add_rn(acc[r], __shfl_xor_sync(0xffffffffu, acc[r], o));
        out[r] = acc[r];
    }
}

// One row: warp_sqdist_rows with R = 1 and 4 chunks of the row in flight.
template <typename T>
__device__ __forceinline__ float warp_sqdist(const T* __restrict__ a, const T* __restrict__ b,
                                             int d, int lane, bool vec) {
    const T* rows[1] = {a};
    float out[1];
    warp_sqdist_rows<T, 1, 4>(rows, b, d, lane, vec, out);
    return out[0];
}

// Packed argmax key: (float bits of v) << 32 | (KEY_LOW - index). Non-negative
// float bits order like integers, so a larger key is a larger v, then a lower
// index. v < 0 (MARK: picked or excluded) packs to 0, below every live key.
__device__ __forceinline__ i64 pack_key(float v, i64 index) {
    const unsigned bits = __float_as_uint(v);
    if (bits > 0x7f800000u && bits != 0x80000000u) return 0;  // negative (MARK) or NaN; -0 is 0
    return ((i64)(bits & 0x7fffffffu) << 32) | (KEY_LOW - index);
}
__device__ __forceinline__ i64 key_index(i64 key) { return KEY_LOW - (key & KEY_LOW); }

__device__ __forceinline__ i64 warp_max(i64 v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        i64 other = __shfl_xor_sync(0xffffffffu, v, o);
        v = other > v ? other : v;
    }
    return v;
}

// Block-wide max of `v` (every thread passes one); the result is valid in thread 0.
__device__ __forceinline__ i64 block_max(i64 v, i64* scratch) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    v = warp_max(v);
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < (int)(blockDim.x >> 5) ? scratch[lane] : 0;
        v = warp_max(v);
    }
    __syncthreads();  // scratch is reused by the next call
    return v;
}

// All blocks of the grid meet here. Valid only in a cooperative launch (every
// block resident). bar[0] counts arrivals, bar[1] is the generation; the host
// zeroes bar[0] before the launch. The fences publish this block's writes
// (its atomicMax of the step's key) before the others read them.
__device__ __forceinline__ void grid_barrier(unsigned* bar) {
    __syncthreads();
    if (threadIdx.x == 0) {
        volatile unsigned* gen = bar + 1;
        const unsigned g = *gen;
        __threadfence();
        if (atomicAdd(bar, 1u) == gridDim.x - 1) {
            atomicExch(bar, 0u);
            __threadfence();
            atomicAdd(bar + 1, 1u);
        } else {
            while (*gen == g) __nanosleep(32);
        }
        __threadfence();
    }
    __syncthreads();
}

// Read a word other blocks wrote (through L2, never a stale L1 line).
__device__ __forceinline__ i64 load_shared_word(const i64* p) { return *(const volatile i64*)p; }

#define HMINSEL_FOR_TYPES(MACRO) MACRO(f32, float) MACRO(f16, f16_t) MACRO(bf16, bf16_t)
