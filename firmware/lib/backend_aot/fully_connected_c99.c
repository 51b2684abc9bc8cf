/* Fully connected, portable C99 variant, bit-exact with TFLM's reference kernel (kernels.h:
 * folded biases, per-channel requantization; reads NT_LAYOUT_TFLITE and FC_STACKED). */
#include "kernels.h"

#include "requant.h"

/* acc + sum_i x[i] * w[i], i < n. */
static int32_t dot_plain(const int8_t* x, const int8_t* w, int32_t n, int32_t acc) {
    for (int32_t i = 0; i < n; ++i) {
        acc += (int32_t)x[i] * (int32_t)w[i];
    }
    return acc;
}

int nt_fully_connected_c99(const nt_fc_params* p, const int8_t* in, int8_t* out) {
    const int32_t layout = p->weight_layout;
    if (layout != NT_LAYOUT_TFLITE && layout != NT_LAYOUT_FC_STACKED) {
        return NT_ERR_LAYOUT;
    }
    /* NT_LAYOUT_FC_STACKED (kernels.h): per 8-input block, the byte pairs (row o ^ 0x80,
     * row o + 1) of inputs kIn[0..7], 16 bytes; then each row's tail as is. */
    static const uint8_t kIn[8] = {0, 2, 1, 3, 4, 6, 5, 7};
    const int32_t k = p->in_features, rows = p->out_features, body = k & ~7;
    for (int32_t b = 0; b < p->batches; ++b) {
        const int8_t* x = in + (size_t)b * (size_t)k;
        int8_t* y = out + (size_t)b * (size_t)rows;
        /* The folded bias already holds bias - in_zp * sum(w): sum raw products only. */
        for (int32_t o = 0, n = 1; o < rows; o += n) {
            const int8_t* w = p->weights + (size_t)o * (size_t)k;
            int32_t acc[2] = {p->bias_folded[o], 0};
            /* a stacked pair, or one plain row (NT_LAYOUT_TFLITE, an odd last row) */
            n = layout == NT_LAYOUT_FC_STACKED && o + 1 < rows ? 2 : 1;
            if (n == 1) {
                acc[0] = dot_plain(x, w, k, acc[0]);
            } else {
                acc[1] = p->bias_folded[o + 1];
                for (int32_t i = 0; i < body; i += 8, w += 16) {
                    for (int32_t j = 0; j < 8; ++j) {
                        const int32_t xv = x[i + kIn[j]];
                        acc[0] += xv * ((int32_t)(uint8_t)w[2 * j] - 128);
                        acc[1] += xv * (int32_t)w[2 * j + 1];
                    }
                }
                acc[0] = dot_plain(x + body, w, k - body, acc[0]);
                acc[1] = dot_plain(x + body, w + (k - body), k - body, acc[1]);
            }
            for (int32_t r = 0; r < n; ++r) {
                y[o + r] = requant(acc[r], p->multiplier, p->shift, p->per_channel, o + r,
                                   p->out_zp, p->act_min, p->act_max);
            }
        }
    }
    return NT_OK;
}
