/* MEAN over contiguous axes, as thresholds on the int32 sum
 * probed from TFLM by the generator (kernels.h nt_mean_params). Portable C99, no variant. */
#include "kernels.h"

int nt_mean(const nt_mean_params* p, const int8_t* in, int8_t* out) {
    for (int32_t o = 0; o < p->outer; ++o) {
        const int8_t* block = in + (size_t)o * (size_t)(p->reduce * p->inner);
        for (int32_t i = 0; i < p->inner; ++i) {
            int32_t sum = 0;
            for (int32_t r = 0; r < p->reduce; ++r) {
                sum += block[(size_t)r * (size_t)p->inner + (size_t)i];
            }
            /* number of thresholds <= sum (binary search; thresholds ascending) */
            int32_t lo = 0, hi = p->n_thresholds;
            while (lo < hi) {
                const int32_t mid = lo + (hi - lo) / 2;
                if (p->thresholds[mid] <= sum) {
                    lo = mid + 1;
                } else {
                    hi = mid;
                }
            }
            out[(size_t)o * (size_t)p->inner + (size_t)i] = (int8_t)(p->out_base + lo);
        }
    }
    return NT_OK;
}
