/* Conv2d (with an optional fused max pool), portable C99 variant, bit-exact with TFLM's
 * reference kernel (kernels.h: folded biases, per-channel requantization, TFLM padding). */
#include "kernels.h"

#include "requant.h"

/* One conv output value (requantized and clamped) at output pixel (oy, ox), channel oc. */
static inline int8_t conv_value(const nt_conv_params* p, const int8_t* img, int32_t oy, int32_t ox,
                                int32_t oc) {
    const int32_t ic = p->in_c;
    const int32_t taps = p->k_h * p->k_w * ic;
    const int32_t y0 = oy * p->stride_h - p->pad_top;
    const int32_t x0 = ox * p->stride_w - p->pad_left;
    const int8_t* w = p->weights + (size_t)oc * (size_t)taps;
    int32_t acc = p->bias_folded[oc];
    for (int32_t ky = 0; ky < p->k_h; ++ky) {
        const int32_t y = y0 + ky * p->dil_h;
        for (int32_t kx = 0; kx < p->k_w; ++kx) {
            const int32_t x = x0 + kx * p->dil_w;
            const int8_t* wk = w + (ky * p->k_w + kx) * ic;
            if (y < 0 || y >= p->in_h || x < 0 || x >= p->in_w) {
                /* Padding tap: TFLM skips it, i.e. it contributes 0 to sum (x - in_zp) * w.
                 * The folded bias subtracted in_zp * w for it, so add that back. */
                for (int32_t c = 0; c < ic; ++c) {
                    acc += p->in_zp * (int32_t)wk[c];
                }
                continue;
            }
            const int8_t* px = img + ((size_t)y * (size_t)p->in_w + (size_t)x) * (size_t)ic;
            for (int32_t c = 0; c < ic; ++c) {
                acc += (int32_t)px[c] * (int32_t)wk[c];
            }
        }
    }
    return requant(acc, p->multiplier, p->shift, p->per_channel, oc, p->out_zp, p->act_min,
                   p->act_max);
}

/* GCC and clang: keep the rarely used fused-pool loop out of the plain one (inlined, it costs the
 * plain loop registers: up to 35 % more instructions per conv measured on mobilenet_v1). */
#if defined(__GNUC__)
#define NT_NOINLINE __attribute__((noinline))
#else
#define NT_NOINLINE
#endif

/* Without a fused pool: straight over the output pixels. */
static NT_NOINLINE int conv2d_plain(const nt_conv_params* p, const int8_t* in, int8_t* out) {
    const int32_t ic = p->in_c;
    const int32_t taps = p->k_h * p->k_w * ic;
    for (int32_t b = 0; b < p->batches; ++b) {
        const int8_t* img = in + (size_t)b * (size_t)(p->in_h * p->in_w * ic);
        for (int32_t oy = 0; oy < p->out_h; ++oy) {
            const int32_t y0 = oy * p->stride_h - p->pad_top;
            for (int32_t ox = 0; ox < p->out_w; ++ox) {
                const int32_t x0 = ox * p->stride_w - p->pad_left;
                int8_t* dst = out + ((size_t)(b * p->out_h + oy) * (size_t)p->out_w + (size_t)ox) *
                                        (size_t)p->out_c;
                for (int32_t oc = 0; oc < p->out_c; ++oc) {
                    const int8_t* w = p->weights + (size_t)oc * (size_t)taps;
                    int32_t acc = p->bias_folded[oc];
                    for (int32_t ky = 0; ky < p->k_h; ++ky) {
                        const int32_t y = y0 + ky * p->dil_h;
                        for (int32_t kx = 0; kx < p->k_w; ++kx) {
                            const int32_t x = x0 + kx * p->dil_w;
                            const int8_t* wk = w + (ky * p->k_w + kx) * ic;
                            if (y < 0 || y >= p->in_h || x < 0 || x >= p->in_w) {
                                /* Padding tap: TFLM skips it, i.e. it contributes 0 to
                                 * sum (x - in_zp) * w. The folded bias subtracted
                                 * in_zp * w for it, so add that back. */
                                for (int32_t c = 0; c < ic; ++c) {
                                    acc += p->in_zp * (int32_t)wk[c];
                                }
                                continue;
                            }
                            const int8_t* px =
                                img + ((size_t)y * (size_t)p->in_w + (size_t)x) * (size_t)ic;
                            for (int32_t c = 0; c < ic; ++c) {
                                acc += (int32_t)px[c] * (int32_t)wk[c];
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

int nt_conv2d_c99(const nt_conv_params* p, const int8_t* in, int8_t* out) {
    if (p->weight_layout != NT_LAYOUT_TFLITE) {
        return NT_ERR_LAYOUT;
    }
    if (p->pool_h <= 0 && p->pool_w <= 0) {
        return conv2d_plain(p, in, out);
    }
    /* Fused pool: the max over each window of the conv outputs. */
    const int32_t ph = p->pool_h > 0 ? p->pool_h : 1;
    const int32_t pw = p->pool_w > 0 ? p->pool_w : 1;
    const int32_t out_h = p->out_h / ph;
    const int32_t out_w = p->out_w / pw;
    for (int32_t b = 0; b < p->batches; ++b) {
        const int8_t* img = in + (size_t)b * (size_t)(p->in_h * p->in_w * p->in_c);
        for (int32_t py = 0; py < out_h; ++py) {
            for (int32_t px = 0; px < out_w; ++px) {
                int8_t* dst = out + ((size_t)(b * out_h + py) * (size_t)out_w + (size_t)px) *
                                        (size_t)p->out_c;
                for (int32_t oc = 0; oc < p->out_c; ++oc) {
                    int8_t m = -128;
                    for (int32_t dy = 0; dy < ph; ++dy) {
                        for (int32_t dx = 0; dx < pw; ++dx) {
                            const int8_t v = conv_value(p, img, py * ph + dy, px * pw + dx, oc);
                            m = v > m ? v : m;
                        }
                    }
                    dst[oc] = m;
                }
            }
        }
    }
    return NT_OK;
}
