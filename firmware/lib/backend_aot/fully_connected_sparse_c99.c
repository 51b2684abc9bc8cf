/* Portable C99 block-sparse fully connected (kernels_sparse.h): the reference the DSP variant is
 * checked against, and what host builds run. */
#include "kernels_sparse.h"

int nt_fully_connected_sparse_c99(const nt_fc_sparse_params* p, const int8_t* in, int8_t* out) {
    const int32_t depth = p->in_features, rows = p->out_features;
    if (depth <= 0 || rows <= 0 || (depth & 1) || (rows & 1) || depth / 8 > 256) {
        return NT_ERR_PARAM;
    }
    const int32_t body = depth & ~7, tail = depth - body;
    for (int32_t b = 0; b < p->batches; ++b) {
        const int8_t* x = in + (size_t)b * (size_t)depth;
        int8_t* y = out + (size_t)b * (size_t)rows;
        const int8_t* w = p->weights;
        const uint8_t* idx = p->block_index;
        for (int32_t j = 0; j < rows / 2; ++j) {
            /* Skipped blocks are all zero: the sum over the stored ones is the whole sum. */
            int32_t acc0 = p->bias_folded[2 * j], acc1 = p->bias_folded[2 * j + 1];
            for (int32_t n = p->block_count[j]; n > 0; --n, w += 16) {
                const int8_t* xb = x + 8 * (int32_t)*idx++;
                for (int32_t i = 0; i < 8; ++i) {
                    acc0 += (int32_t)xb[i] * (int32_t)w[i];
                    acc1 += (int32_t)xb[i] * (int32_t)w[8 + i];
                }
            }
            for (int32_t i = 0; i < tail; ++i) {
                acc0 += (int32_t)x[body + i] * (int32_t)w[i];
                acc1 += (int32_t)x[body + i] * (int32_t)w[tail + i];
            }
            w += 2 * tail;
            const int32_t c0 = p->per_channel ? 2 * j : 0, c1 = p->per_channel ? 2 * j + 1 : 0;
            y[2 * j] = (int8_t)nt_clamp(nt_mul_q(acc0, p->multiplier[c0], p->shift[c0]) + p->out_zp,
                                        p->act_min, p->act_max);
            y[2 * j + 1] =
                (int8_t)nt_clamp(nt_mul_q(acc1, p->multiplier[c1], p->shift[c1]) + p->out_zp,
                                 p->act_min, p->act_max);
        }
    }
    return NT_OK;
}
