// block_min against a few centres (up to a few hundred) in one pass over x.
//
// The direct form costs three operations an element a centre; the GEMM path
// of cpu_gemm.block_min reads x about three times (a centred tile, its scan,
// the settle) and its top-k lists are built for thousands of centres. Here
// each block of 8 rows is read once (FewSearch, fused_min.h): the values and
// indices block_min_direct gives.
#include "fused_min.h"
#include "parallel.h"

namespace hminsel {

template <typename S>
void fused_block_min(RowSource<S> x, const int64_t* rows, int64_t n, int64_t d, const float* y,
                     int64_t m, const float* mu, const float* panels, const float* yn,
                     const SmallBound& bound, float* value, int64_t* index) {
#if HMINSEL_FUSED_GEMM
  parallel_for(n, 256, (m + 8) * d, [&](int64_t lo, int64_t hi) {
    FewSearch<S> search(x, d, bound);
    search.use(y, m, mu, panels, yn);
    search.nearest(rows ? rows + lo : nullptr, lo, hi - lo, [&](int64_t r, float best, int64_t who) {
      value[lo + r] = best;
      index[lo + r] = who;
    });
  });
#else
  (void)x, (void)rows, (void)n, (void)d, (void)y, (void)m, (void)mu, (void)panels, (void)yn;
  (void)bound, (void)value, (void)index;
#endif
}

template void fused_block_min(RowSource<float>, const int64_t*, int64_t, int64_t, const float*, int64_t,
                              const float*, const float*, const float*, const SmallBound&, float*,
                              int64_t*);
template void fused_block_min(RowSource<Half>, const int64_t*, int64_t, int64_t, const float*, int64_t,
                              const float*, const float*, const float*, const SmallBound&, float*,
                              int64_t*);

}  // namespace hminsel
