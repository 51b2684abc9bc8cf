/* Fully connected, portable C99 variant, bit-exact with TFLM's reference kernel (kernels.h:
 * folded biases, per-channel requantization; reads NT_LAYOUT_TFLITE and FC_PAIRS8). */
#include "kernels.h"

#include "requant.h"

int nt_fully_connected_c99(const nt_fc_params* p, const int8_t* in, int8_t* out) {
    const int32_t layout = p->weight_layout;
    if (layout != NT_LAYOUT_TFLITE && layout != NT_LAYOUT_FC_PAIRS8) {
        return NT_ERR_LAYOUT;
    }
    const int32_t k = p->in_features;
    for (int32_t b = 0; b < p->batches; ++b) {
        const int8_t* x = in + (size_t)b * (size_t)k;
        for (int32_t o = 0; o < p->out_features; ++o) {
            /* The folded bias already holds bias - in_zp * sum(w): sum raw products only. */
            int32_t acc = p->bias_folded[o];
            if (layout == NT_LAYOUT_TFLITE) {
                const int8_t* w = p->weights + (size_t)o * (size_t)k;
                for (int32_t i = 0; i < k; ++i) {
                    acc += (int32_t)x[i] * (int32_t)w[i];
                }
            } else {
                /* NT_LAYOUT_FC_PAIRS8 (kernels.h): 8-input blocks 16 bytes apart, then the
                 * tail; nt_fc_weight_index gives the start of each run. */
                const int32_t body = k & ~7;
                const int8_t* w = p->weights + nt_fc_weight_index(layout, k, p->out_features, o, 0);
                const int plain = (p->out_features & 1) && o == p->out_features - 1;
                const int32_t step = plain ? 8 : 16; /* an odd last row is stored plainly */
                for (int32_t i = 0; i < body; i += 8, w += step) {
                    for (int32_t j = 0; j < 8; ++j) {
                        acc += (int32_t)x[i + j] * (int32_t)w[j];
                    }
                }
                if (body < k) {
                    w = p->weights + nt_fc_weight_index(layout, k, p->out_features, o, body);
                    for (int32_t i = body; i < k; ++i) {
                        acc += (int32_t)x[i] * (int32_t)w[i - body];
                    }
                }
            }
            out[(size_t)b * (size_t)p->out_features + (size_t)o] = requant(
                acc, p->multiplier, p->shift, p->per_channel, o, p->out_zp, p->act_min, p->act_max);
        }
    }
    return NT_OK;
}
