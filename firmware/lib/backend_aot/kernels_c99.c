/* Portable C99 int8 kernels, bit-exact with TFLM's reference kernels (see kernels.h for the
 * conventions: folded biases, per-channel requantization, TFLM padding). Also the data-movement
 * and table kernels, which have no DSP variant. No allocation, no floating point, no libc
 * beyond memcpy. */
#include "kernels.h"

#include <string.h>

static inline int8_t requant(int32_t acc, const int32_t *mult, const int32_t *shift,
                             int32_t per_channel, int32_t c, int32_t out_zp, int32_t lo,
                             int32_t hi) {
    const int32_t i = per_channel ? c : 0;
    const int32_t v = nt_mul_q(acc, mult[i], shift[i]) + out_zp;
    return (int8_t)nt_clamp(v, lo, hi);
}

int nt_fully_connected_c99(const nt_fc_params *p, const int8_t *in, int8_t *out) {
    const int32_t layout = p->weight_layout;
    if (layout != NT_LAYOUT_TFLITE && layout != NT_LAYOUT_FC_PAIRS8) {
        return NT_ERR_LAYOUT;
    }
    const int32_t k = p->in_features;
    for (int32_t b = 0; b < p->batches; ++b) {
        const int8_t *x = in + (size_t)b * (size_t)k;
        for (int32_t o = 0; o < p->out_features; ++o) {
            /* The folded bias already holds bias - in_zp * sum(w): sum raw products only. */
            int32_t acc = p->bias_folded[o];
            if (layout == NT_LAYOUT_TFLITE) {
                const int8_t *w = p->weights + (size_t)o * (size_t)k;
                for (int32_t i = 0; i < k; ++i) {
                    acc += (int32_t)x[i] * (int32_t)w[i];
                }
            } else {
                /* NT_LAYOUT_FC_PAIRS8 (kernels.h): 8-input blocks 16 bytes apart, then the
                 * tail; nt_fc_weight_index gives the start of each run. */
                const int32_t body = k & ~7;
                const int8_t *w = p->weights + nt_fc_weight_index(layout, k, p->out_features, o, 0);
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
            out[(size_t)b * (size_t)p->out_features + (size_t)o] =
                requant(acc, p->multiplier, p->shift, p->per_channel, o, p->out_zp,
                        p->act_min, p->act_max);
        }
    }
    return NT_OK;
}

/* One conv output value (requantized and clamped) at output pixel (oy, ox), channel oc. */
static inline int8_t conv_value(const nt_conv_params *p, const int8_t *img, int32_t oy,
                                int32_t ox, int32_t oc) {
    const int32_t ic = p->in_c;
    const int32_t taps = p->k_h * p->k_w * ic;
    const int32_t y0 = oy * p->stride_h - p->pad_top;
    const int32_t x0 = ox * p->stride_w - p->pad_left;
    const int8_t *w = p->weights + (size_t)oc * (size_t)taps;
    int32_t acc = p->bias_folded[oc];
    for (int32_t ky = 0; ky < p->k_h; ++ky) {
        const int32_t y = y0 + ky * p->dil_h;
        for (int32_t kx = 0; kx < p->k_w; ++kx) {
            const int32_t x = x0 + kx * p->dil_w;
            const int8_t *wk = w + (ky * p->k_w + kx) * ic;
            if (y < 0 || y >= p->in_h || x < 0 || x >= p->in_w) {
                /* Padding tap: TFLM skips it, i.e. it contributes 0 to sum (x - in_zp) * w.
                 * The folded bias subtracted in_zp * w for it, so add that back. */
                for (int32_t c = 0; c < ic; ++c) {
                    acc += p->in_zp * (int32_t)wk[c];
                }
                continue;
            }
            const int8_t *px = img + ((size_t)y * (size_t)p->in_w + (size_t)x) * (size_t)ic;
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
static NT_NOINLINE int conv2d_plain(const nt_conv_params *p, const int8_t *in, int8_t *out) {
    const int32_t ic = p->in_c;
    const int32_t taps = p->k_h * p->k_w * ic;
    for (int32_t b = 0; b < p->batches; ++b) {
        const int8_t *img = in + (size_t)b * (size_t)(p->in_h * p->in_w * ic);
        for (int32_t oy = 0; oy < p->out_h; ++oy) {
            const int32_t y0 = oy * p->stride_h - p->pad_top;
            for (int32_t ox = 0; ox < p->out_w; ++ox) {
                const int32_t x0 = ox * p->stride_w - p->pad_left;
                int8_t *dst = out + ((size_t)(b * p->out_h + oy) * (size_t)p->out_w + (size_t)ox) *
                                        (size_t)p->out_c;
                for (int32_t oc = 0; oc < p->out_c; ++oc) {
                    const int8_t *w = p->weights + (size_t)oc * (size_t)taps;
                    int32_t acc = p->bias_folded[oc];
                    for (int32_t ky = 0; ky < p->k_h; ++ky) {
                        const int32_t y = y0 + ky * p->dil_h;
                        for (int32_t kx = 0; kx < p->k_w; ++kx) {
                            const int32_t x = x0 + kx * p->dil_w;
                            const int8_t *wk = w + (ky * p->k_w + kx) * ic;
                            if (y < 0 || y >= p->in_h || x < 0 || x >= p->in_w) {
                                /* Padding tap: TFLM skips it, i.e. it contributes 0 to
                                 * sum (x - in_zp) * w. The folded bias subtracted
                                 * in_zp * w for it, so add that back. */
                                for (int32_t c = 0; c < ic; ++c) {
                                    acc += p->in_zp * (int32_t)wk[c];
                                }
                                continue;
                            }
                            const int8_t *px = img + ((size_t)y * (size_t)p->in_w + (size_t)x) *
                                                         (size_t)ic;
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

int nt_conv2d_c99(const nt_conv_params *p, const int8_t *in, int8_t *out) {
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
        const int8_t *img = in + (size_t)b * (size_t)(p->in_h * p->in_w * p->in_c);
        for (int32_t py = 0; py < out_h; ++py) {
            for (int32_t px = 0; px < out_w; ++px) {
                int8_t *dst = out + ((size_t)(b * out_h + py) * (size_t)out_w + (size_t)px) *
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

int nt_depthwise_conv2d_c99(const nt_conv_params *p, const int8_t *in, int8_t *out) {
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
        const int8_t *img = in + (size_t)b * (size_t)(p->in_h * p->in_w * ic);
        for (int32_t oy = 0; oy < p->out_h; ++oy) {
            const int32_t y0 = oy * p->stride_h - p->pad_top;
            for (int32_t ox = 0; ox < p->out_w; ++ox) {
                const int32_t x0 = ox * p->stride_w - p->pad_left;
                int8_t *dst = out + ((size_t)(b * p->out_h + oy) * (size_t)p->out_w + (size_t)ox) *
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
                                acc += (int32_t)img[((size_t)y * (size_t)p->in_w + (size_t)x) *
                                                        (size_t)ic + (size_t)c] * w;
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

static int pool(const nt_pool_params *p, const int8_t *in, int8_t *out, int is_max) {
    const int32_t ch = p->channels;
    for (int32_t b = 0; b < p->batches; ++b) {
        const int8_t *img = in + (size_t)b * (size_t)(p->in_h * p->in_w * ch);
        for (int32_t oy = 0; oy < p->out_h; ++oy) {
            const int32_t y0 = oy * p->stride_h - p->pad_top;
            const int32_t fy0 = y0 < 0 ? -y0 : 0;
            const int32_t fy1 = p->filter_h < p->in_h - y0 ? p->filter_h : p->in_h - y0;
            for (int32_t ox = 0; ox < p->out_w; ++ox) {
                const int32_t x0 = ox * p->stride_w - p->pad_left;
                const int32_t fx0 = x0 < 0 ? -x0 : 0;
                const int32_t fx1 = p->filter_w < p->in_w - x0 ? p->filter_w : p->in_w - x0;
                int8_t *dst = out + ((size_t)(b * p->out_h + oy) * (size_t)p->out_w + (size_t)ox) *
                                        (size_t)ch;
                for (int32_t c = 0; c < ch; ++c) {
                    int32_t acc = is_max ? -128 : 0;
                    int32_t count = 0;
                    for (int32_t fy = fy0; fy < fy1; ++fy) {
                        for (int32_t fx = fx0; fx < fx1; ++fx) {
                            const int32_t v = img[((size_t)(y0 + fy) * (size_t)p->in_w +
                                                   (size_t)(x0 + fx)) * (size_t)ch + (size_t)c];
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

int nt_avg_pool(const nt_pool_params *p, const int8_t *in, int8_t *out) {
    return pool(p, in, out, 0);
}

int nt_max_pool_c99(const nt_pool_params *p, const int8_t *in, int8_t *out) {
    return pool(p, in, out, 1);
}

int nt_mean(const nt_mean_params *p, const int8_t *in, int8_t *out) {
    for (int32_t o = 0; o < p->outer; ++o) {
        const int8_t *block = in + (size_t)o * (size_t)(p->reduce * p->inner);
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

int nt_add(const nt_add_params *p, const int8_t *in1, const int8_t *in2, int8_t *out) {
    for (int32_t i = 0; i < p->count; ++i) {
        const int32_t a = (p->in1_offset + in1[i]) * (1 << p->left_shift);
        const int32_t b = (p->in2_offset + in2[i * p->in2_stride]) * (1 << p->left_shift);
        const int32_t sa = nt_mul_q(a, p->in1_multiplier, p->in1_shift);
        const int32_t sb = nt_mul_q(b, p->in2_multiplier, p->in2_shift);
        const int32_t v = nt_mul_q(sa + sb, p->out_multiplier, p->out_shift) + p->out_offset;
        out[i] = (int8_t)nt_clamp(v, p->act_min, p->act_max);
    }
    return NT_OK;
}

int nt_mul(const nt_mul_params *p, const int8_t *in1, const int8_t *in2, int8_t *out) {
    for (int32_t i = 0; i < p->count; ++i) {
        const int32_t a = p->in1_offset + in1[i];
        const int32_t b = p->in2_offset + in2[i * p->in2_stride];
        const int32_t v = nt_mul_q(a * b, p->out_multiplier, p->out_shift) + p->out_offset;
        out[i] = (int8_t)nt_clamp(v, p->act_min, p->act_max);
    }
    return NT_OK;
}

/* ---- softmax: gemmlowp fixed point, as TFLM's reference_ops::Softmax (int8) ---------------- */

/* Saturating multiply by 2^exponent (exponent > 0) or rounding divide (exponent < 0). */
static int32_t sat_pot(int32_t x, int32_t exponent) {
    if (exponent > 0) {
        const int32_t hi = INT32_MAX >> exponent;
        const int32_t lo = INT32_MIN >> exponent;
        if (x > hi) {
            return INT32_MAX;
        }
        if (x < lo) {
            return INT32_MIN;
        }
        return (int32_t)((uint32_t)x << exponent);
    }
    return exponent < 0 ? nt_rdbpot(x, -exponent) : x;
}

/* exp(x) for x in [-1/4, 0), x and result in Q0.31. */
static int32_t exp_quarter(int32_t a) {
    const int32_t kConstTerm = 1895147668;  /* exp(-1/8) */
    const int32_t kOneThird = 715827883;    /* 1/3 */
    const int32_t x = a + (1 << 28);        /* a + 1/8 */
    const int32_t x2 = nt_srdhm(x, x);
    const int32_t x3 = nt_srdhm(x2, x);
    const int32_t x4 = nt_srdhm(x2, x2);
    const int32_t x4_over_4 = nt_rdbpot(x4, 2);
    const int32_t poly = nt_rdbpot(nt_srdhm(x4_over_4 + x3, kOneThird) + x2, 1);
    return kConstTerm + nt_srdhm(kConstTerm, x + poly);
}

/* exp(a) for a <= 0 given in Q5.26; result in Q0.31 (gemmlowp exp_on_negative_values). */
static int32_t exp_neg_q5(int32_t a) {
    const int32_t kFracBits = 26;
    const int32_t kOneQuarter = 1 << (kFracBits - 2);
    const int32_t mask = kOneQuarter - 1;
    const int32_t a_mod = (a & mask) - kOneQuarter;
    int32_t result = exp_quarter(sat_pot(a_mod, 5));
    const int32_t remainder = a_mod - a;
    /* multipliers exp(-2^k) for k = -2..4, applied for each set bit of the remainder */
    static const int32_t kMult[7] = {1672461947, 1302514674, 790015084, 290630308,
                                     39332535,   720401,     242};
    for (int32_t k = 0; k < 7; ++k) {
        if (remainder & (1 << (kFracBits - 2 + k))) {
            result = nt_srdhm(result, kMult[k]);
        }
    }
    return a == 0 ? INT32_MAX : result;
}

/* 1 / (1 + x) for x in [0, 1), x in Q0.31, result in Q0.31 (Newton-Raphson, gemmlowp). */
static int32_t one_over_one_plus_x(int32_t a) {
    const int64_t sum = (int64_t)a + INT32_MAX;
    const int32_t half_den = (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2); /* Q0.31 */
    const int32_t k48_17 = 1515870810;     /* 48/17 in Q2.29 */
    const int32_t kNeg32_17 = -1010580540; /* -32/17 in Q2.29 */
    int32_t x = k48_17 + nt_srdhm(half_den, kNeg32_17);
    for (int i = 0; i < 3; ++i) {
        const int32_t hdx = nt_srdhm(half_den, x);           /* Q2.29 */
        const int32_t one_minus = (1 << 29) - hdx;           /* Q2.29 */
        x = x + sat_pot(nt_srdhm(x, one_minus), 2);          /* Q4.27 -> Q2.29 */
    }
    return sat_pot(x, 1); /* x/2 in Q1.30 read as Q0.31 */
}

static int32_t clz32(uint32_t v) {
    int32_t n = 0;
    if (v == 0) {
        return 32;
    }
    while (!(v & 0x80000000u)) {
        v <<= 1;
        ++n;
    }
    return n;
}

int nt_softmax(const nt_softmax_params *p, const int8_t *in, int8_t *out) {
    const int32_t kAccumBits = 12;
    for (int32_t r = 0; r < p->rows; ++r) {
        const int8_t *x = in + (size_t)r * (size_t)p->depth;
        int8_t *y = out + (size_t)r * (size_t)p->depth;
        int32_t max_v = -128;
        for (int32_t c = 0; c < p->depth; ++c) {
            max_v = x[c] > max_v ? x[c] : max_v;
        }
        int32_t sum = 0; /* Q12.19 */
        for (int32_t c = 0; c < p->depth; ++c) {
            const int32_t diff = x[c] - max_v;
            if (diff >= p->diff_min) {
                const int32_t scaled = nt_mul_q(diff, p->input_multiplier, p->input_left_shift);
                sum += sat_pot(exp_neg_q5(scaled), -kAccumBits);
            }
        }
        const int32_t headroom = clz32((uint32_t)sum);
        const int32_t bits_over_unit = kAccumBits - headroom;
        const int32_t shifted_minus_one =
            (int32_t)(((uint32_t)sum << headroom) - ((uint32_t)1 << 31));
        const int32_t scale = one_over_one_plus_x(shifted_minus_one);
        for (int32_t c = 0; c < p->depth; ++c) {
            const int32_t diff = x[c] - max_v;
            if (diff >= p->diff_min) {
                const int32_t scaled = nt_mul_q(diff, p->input_multiplier, p->input_left_shift);
                const int32_t e = exp_neg_q5(scaled);
                const int32_t unsat = nt_rdbpot(nt_srdhm(scale, e), bits_over_unit + 31 - 8);
                y[c] = (int8_t)nt_clamp(unsat - 128, -128, 127);
            } else {
                y[c] = -128;
            }
        }
    }
    return NT_OK;
}

int nt_lut(const int8_t table[256], const int8_t *in, int8_t *out, int32_t count) {
    for (int32_t i = 0; i < count; ++i) {
        out[i] = table[(uint8_t)in[i]];
    }
    return NT_OK;
}

int nt_gather(const nt_gather_params *p, const int8_t *in, int8_t *out) {
    int32_t shape[NT_MAX_DIMS], stride[NT_MAX_DIMS];
    const int32_t pad = NT_MAX_DIMS - p->dims;
    if (p->dims < 1 || p->dims > NT_MAX_DIMS) {
        return NT_ERR_PARAM;
    }
    /* Right-align into NT_MAX_DIMS loops so one loop nest serves every rank. */
    for (int32_t d = 0; d < NT_MAX_DIMS; ++d) {
        shape[d] = d < pad ? 1 : p->out_shape[d - pad];
        stride[d] = d < pad ? 0 : p->in_stride[d - pad];
    }
    size_t o = 0;
    for (int32_t i0 = 0; i0 < shape[0]; ++i0) {
        for (int32_t i1 = 0; i1 < shape[1]; ++i1) {
            for (int32_t i2 = 0; i2 < shape[2]; ++i2) {
                for (int32_t i3 = 0; i3 < shape[3]; ++i3) {
                    const int32_t base = p->offset + i0 * stride[0] + i1 * stride[1] +
                                         i2 * stride[2] + i3 * stride[3];
                    if (stride[5] == 1) {
                        for (int32_t i4 = 0; i4 < shape[4]; ++i4) {
                            memcpy(out + o, in + base + i4 * stride[4], (size_t)shape[5]);
                            o += (size_t)shape[5];
                        }
                    } else if (shape[5] == 2) {
                        /* e.g. ShuffleNet's channel shuffle (a 2-group transpose): pairs. */
                        const int8_t *src = in + base;
                        int8_t *dst = out + o;
                        const int32_t s4 = stride[4], s5 = stride[5];
                        for (int32_t i4 = 0; i4 < shape[4]; ++i4, src += s4, dst += 2) {
                            dst[0] = src[0];
                            dst[1] = src[s5];
                        }
                        o += 2 * (size_t)shape[4];
                    } else {
                        for (int32_t i4 = 0; i4 < shape[4]; ++i4) {
                            const int8_t *src = in + base + i4 * stride[4];
                            for (int32_t i5 = 0; i5 < shape[5]; ++i5, src += stride[5]) {
                                out[o++] = *src;
                            }
                        }
                    }
                }
            }
        }
    }
    return NT_OK;
}

int nt_concat(const int8_t *const *ins, const int32_t *copy_bytes, int32_t n_inputs,
              int32_t outer, int8_t *out) {
    for (int32_t o = 0; o < outer; ++o) {
        for (int32_t i = 0; i < n_inputs; ++i) {
            memcpy(out, ins[i] + (size_t)o * (size_t)copy_bytes[i], (size_t)copy_bytes[i]);
            out += copy_bytes[i];
        }
    }
    return NT_OK;
}
