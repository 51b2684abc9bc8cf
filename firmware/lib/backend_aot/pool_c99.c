/* Max and average pool, portable C99 (max: the c99 variant of pool_dsp.c; average: the
 * only variant), bit-exact with TFLM's reference kernels (window clipped to the image). */
#include "kernels.h"

static int pool(const nt_pool_params* p, const int8_t* in, int8_t* out, int is_max) {
    const int32_t ch = p->channels;
    for (int32_t b = 0; b < p->batches; ++b) {
        const int8_t* img = in + (size_t)b * (size_t)(p->in_h * p->in_w * ch);
        for (int32_t oy = 0; oy < p->out_h; ++oy) {
            const int32_t y0 = oy * p->stride_h - p->pad_top;
            const int32_t fy0 = y0 < 0 ? -y0 : 0;
            const int32_t fy1 = p->filter_h < p->in_h - y0 ? p->filter_h : p->in_h - y0;
            for (int32_t ox = 0; ox < p->out_w; ++ox) {
                const int32_t x0 = ox * p->stride_w - p->pad_left;
                const int32_t fx0 = x0 < 0 ? -x0 : 0;
                const int32_t fx1 = p->filter_w < p->in_w - x0 ? p->filter_w : p->in_w - x0;
                int8_t* dst = out + ((size_t)(b * p->out_h + oy) * (size_t)p->out_w + (size_t)ox) *
                                        (size_t)ch;
                for (int32_t c = 0; c < ch; ++c) {
                    int32_t acc = is_max ? -128 : 0;
                    int32_t count = 0;
                    for (int32_t fy = fy0; fy < fy1; ++fy) {
                        for (int32_t fx = fx0; fx < fx1; ++fx) {
                            const int32_t v =
                                img[((size_t)(y0 + fy) * (size_t)p->in_w + (size_t)(x0 + fx)) *
                                        (size_t)ch +
                                    (size_t)c];
                            if (is_max) {
                                acc = v > acc ? v : acc;
                            } else {
                                acc += v;
                            }
                            ++count;
                        }
                    }
                    if (count == 0) {
                        return NT_ERR_PARAM;
                    }
                    if (!is_max) {
                        /* TFLM: round half away from zero by adding +-count/2, then divide
                         * (C division truncates toward zero). */
                        acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
                    }
                    dst[c] = (int8_t)nt_clamp(acc, p->act_min, p->act_max);
                }
            }
        }
    }
    return NT_OK;
}

int nt_avg_pool(const nt_pool_params* p, const int8_t* in, int8_t* out) {
    return pool(p, in, out, 0);
}

int nt_max_pool_c99(const nt_pool_params* p, const int8_t* in, int8_t* out) {
    return pool(p, in, out, 1);
}
