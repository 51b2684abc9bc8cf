/* Depthwise conv2d (any depth multiplier), portable C99 variant, bit-exact with TFLM's
 * reference kernel. */
#include "kernels.h"

#include "requant.h"

int nt_depthwise_conv2d_c99(const nt_conv_params* p, const int8_t* in, int8_t* out) {
    if (p->weight_layout != NT_LAYOUT_TFLITE) {
        return NT_ERR_LAYOUT;
    }
    if (p->pool_h != 0 || p->pool_w != 0) {
        return NT_ERR_PARAM; /* pool fusion is a conv2d feature */
    }
    const int32_t ic = p->in_c;
    const int32_t oc_n = p->out_c;
    const int32_t dm = p->depth_multiplier;
    for (int32_t b = 0; b < p->batches; ++b) {
        const int8_t* img = in + (size_t)b * (size_t)(p->in_h * p->in_w * ic);
        for (int32_t oy = 0; oy < p->out_h; ++oy) {
            const int32_t y0 = oy * p->stride_h - p->pad_top;
            for (int32_t ox = 0; ox < p->out_w; ++ox) {
                const int32_t x0 = ox * p->stride_w - p->pad_left;
                int8_t* dst = out + ((size_t)(b * p->out_h + oy) * (size_t)p->out_w + (size_t)ox) *
                                        (size_t)oc_n;
                for (int32_t oc = 0; oc < oc_n; ++oc) {
                    const int32_t c = oc / dm; /* input channel of output channel oc */
                    int32_t acc = p->bias_folded[oc];
                    for (int32_t ky = 0; ky < p->k_h; ++ky) {
                        const int32_t y = y0 + ky * p->dil_h;
                        for (int32_t kx = 0; kx < p->k_w; ++kx) {
                            const int32_t x = x0 + kx * p->dil_w;
                            const int32_t w = p->weights[(ky * p->k_w + kx) * oc_n + oc];
                            if (y < 0 || y >= p->in_h || x < 0 || x >= p->in_w) {
                                acc += p->in_zp * w; /* padding tap, see nt_conv2d_c99 */
                            } else {
                                acc +=
                                    (int32_t)
                                        img[((size_t)y * (size_t)p->in_w + (size_t)x) * (size_t)ic +
                                            (size_t)c] *
                                    w;
                            }
                        }
                    }
                    dst[oc] = requant(acc, p->multiplier, p->shift, p->per_channel, oc, p->out_zp,
                                      p->act_min, p->act_max);
                }
            }
        }
    }
    return NT_OK;
}
