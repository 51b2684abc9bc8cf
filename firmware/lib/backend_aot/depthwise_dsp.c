/* Depthwise conv2d, Cortex-M4 DSP variant (bit-exact with depthwise_c99.c and TFLM): depth
 * multiplier 1 runs pixel pairs x 4 channels, each weight word unpacked once for both
 * pixels, with tap pointer tables so border pixels need no bounds checks; other depth
 * multipliers one channel at a time. Needs no scratch (NT_DW_SCRATCH_BYTES). */
#include "kernels.h"

#if defined(__ARM_FEATURE_DSP)

#include "requant.h"
#include "simd_dsp.h"

/* Any depth multiplier, one output channel at a time (rare in the zoo: MobileNet uses 1). */
static int depthwise_generic(const nt_conv_params* p, const int8_t* in, int8_t* out) {
    const int32_t dm = p->depth_multiplier;
    const int pc = p->per_channel != 0;
    for (int32_t b = 0; b < p->batches; b++) {
        const int8_t* img = in + (size_t)b * p->in_h * p->in_w * p->in_c;
        int8_t* dst = out + (size_t)b * p->out_h * p->out_w * p->out_c;
        for (int32_t oy = 0; oy < p->out_h; oy++) {
            for (int32_t ox = 0; ox < p->out_w; ox++) {
                for (int32_t o = 0; o < p->out_c; o++) {
                    const int32_t ic = o / dm;
                    int32_t acc = p->bias_folded[o];
                    for (int32_t ky = 0; ky < p->k_h; ky++) {
                        const int32_t y = oy * p->stride_h - p->pad_top + ky * p->dil_h;
                        for (int32_t kx = 0; kx < p->k_w; kx++) {
                            const int32_t xx = ox * p->stride_w - p->pad_left + kx * p->dil_w;
                            const int32_t xv = (y >= 0 && y < p->in_h && xx >= 0 && xx < p->in_w)
                                                   ? img[((size_t)y * p->in_w + xx) * p->in_c + ic]
                                                   : p->in_zp;
                            acc += xv * p->weights[((size_t)ky * p->k_w + kx) * p->out_c + o];
                        }
                    }
                    const int32_t q = pc ? o : 0;
                    dst[((size_t)oy * p->out_w + ox) * p->out_c + o] = finish(
                        acc, p->multiplier[q], p->shift[q], p->out_zp, p->act_min, p->act_max);
                }
            }
        }
    }
    return NT_OK;
}

/* Depth multiplier 1, channels a multiple of 4 (at most kStackOutMax), per-channel multipliers
 * 0 or in [2^30, 2^31), at most kDwTapsMax taps. Output pixels in pairs; each has a table of tap
 * pointers (padding taps point at a row of in_zp bytes), so border pixels take the same loop
 * without bounds checks. One tap of four channels for the pair: one LDR of weights, two of
 * activations, six SXTB16, eight SMLABB/SMLATT. */
enum { kDwTapsMax = 64 };

/* Four channels of a pixel pair: tap t of pixel a reads ta[t] + c, of pixel b tb[t] + c (the
 * tables point padding taps at a row of in_zp bytes, the folded-bias contract); each weight
 * word is loaded and unpacked once for both pixels. Results go to q in acc order. */
static inline void dw_q4_pair(const int8_t* const* ta, const int8_t* const* tb, int32_t c,
                              const int8_t* wk, int32_t taps, int32_t ch, const int32_t* bias,
                              int32_t* q) {
    int32_t a0 = bias[0], a1 = bias[1], a2 = bias[2], a3 = bias[3];
    int32_t b0 = a0, b1 = a1, b2 = a2, b3 = a3;
    for (int32_t t = 0; t < taps; t++) {
        const uint32_t wv = ld32(wk);
        wk += ch;
        const uint32_t w02 = __sxtb16(wv), w13 = sxtb16_ror8(wv);
        uint32_t xv = ld32(ta[t] + c);
        uint32_t x02 = __sxtb16(xv), x13 = sxtb16_ror8(xv);
        a0 = __smlabb(x02, w02, a0);
        a2 = __smlatt(x02, w02, a2);
        a1 = __smlabb(x13, w13, a1);
        a3 = __smlatt(x13, w13, a3);
        xv = ld32(tb[t] + c);
        x02 = __sxtb16(xv);
        x13 = sxtb16_ror8(xv);
        b0 = __smlabb(x02, w02, b0);
        b2 = __smlatt(x02, w02, b2);
        b1 = __smlabb(x13, w13, b1);
        b3 = __smlatt(x13, w13, b3);
    }
    q[0] = a0;
    q[1] = b0;
    q[2] = a1;
    q[3] = b1;
    q[4] = a2;
    q[5] = b2;
    q[6] = a3;
    q[7] = b3;
}

/* Tap pointers of output pixel (oy, ox): into the image, or at zp_row for padding taps. */
static void dw_taps(const nt_conv_params* p, const int8_t* img, const int8_t* zp_row, int32_t oy,
                    int32_t ox, const int8_t** t) {
    const int32_t ch = p->out_c;
    const int32_t y0 = oy * p->stride_h - p->pad_top, x0 = ox * p->stride_w - p->pad_left;
    for (int32_t ky = 0; ky < p->k_h; ky++) {
        const int32_t y = y0 + ky * p->dil_h;
        const int row_ok = y >= 0 && y < p->in_h;
        const int8_t* row = img + (size_t)y * p->in_w * ch;
        for (int32_t kx = 0; kx < p->k_w; kx++) {
            const int32_t xx = x0 + kx * p->dil_w;
            *t++ = row_ok && xx >= 0 && xx < p->in_w ? row + (size_t)xx * ch : zp_row;
        }
    }
}

/* Output pixels go in pairs (a, b) through acc (channel-major, acc[2o] a, acc[2o + 1] b) so that
 * the conv's requantization routines serve (one constant setup per channel and pair). */
static int depthwise_dm1_q4(const nt_conv_params* p, const int8_t* in, int8_t* out) {
    const int32_t ch = p->out_c, taps = p->k_h * p->k_w;
    const int32_t out_w = p->out_w;
    const int32_t pixels = p->out_h * out_w;
    const int32_t out_zp = p->out_zp, act_min = p->act_min, act_max = p->act_max;
    const int full = act_min == -128 && act_max == 127;
    const int8_t* ta[kDwTapsMax];
    const int8_t* tb[kDwTapsMax];
    int8_t zp_row[kStackOutMax] __attribute__((aligned(4)));
    int32_t acc[2 * kStackOutMax] __attribute__((aligned(8)));
    memset(zp_row, (int)(int8_t)p->in_zp, (size_t)ch);
    for (int32_t b = 0; b < p->batches; b++) {
        const int8_t* img = in + (size_t)b * p->in_h * p->in_w * ch;
        int8_t* dst = out + (size_t)b * pixels * ch;
        for (int32_t pix = 0; pix < pixels; pix += 2) {
            const int two = pix + 1 < pixels;
            const int32_t oya = pix / out_w, oxa = pix % out_w;
            const int32_t oyb = two ? (pix + 1) / out_w : oya, oxb = two ? (pix + 1) % out_w : oxa;
            dw_taps(p, img, zp_row, oya, oxa, ta);
            dw_taps(p, img, zp_row, oyb, oxb, tb);
            for (int32_t c = 0; c < ch; c += 4) {
                dw_q4_pair(ta, tb, c, p->weights + c, taps, ch, p->bias_folded + c, acc + 2 * c);
            }
            int8_t* oa = dst + (size_t)pix * ch;
            int8_t* ob = two ? oa + ch : oa; /* lone pixel: b results land on a's, then a's */
            if (full) {
                nt_dsp_requant_cols_ssat(acc, p->multiplier, p->shift, out_zp, ch, oa,
                                         (int32_t)(ob - oa));
            } else {
                nt_dsp_requant_cols_clamp(acc, p->multiplier, p->shift, out_zp, act_min, act_max,
                                          ch, oa, (int32_t)(ob - oa));
            }
        }
    }
    return NT_OK;
}

/* Four channels per step: one LDR brings 4 int8 activations of one tap and one LDR 4 weights;
 * SXTB16 splits lanes (0,2) and (1,3), and SMLABB / SMLATT accumulate each lane into its own
 * channel. Padding taps use a word of four in_zp bytes (folded-bias contract). */
int nt_depthwise_conv2d_dsp(const nt_conv_params* p, const int8_t* in, int8_t* out) {
    if (p->weight_layout != NT_LAYOUT_TFLITE) {
        return NT_ERR_LAYOUT;
    }
    if (p->pool_h != 0 || p->pool_w != 0) {
        return NT_ERR_PARAM; /* pool fusion is a conv2d feature */
    }
    if (p->depth_multiplier != 1) {
        return depthwise_generic(p, in, out);
    }
    if ((p->out_c & 3) == 0 && p->per_channel != 0 && p->k_h * p->k_w <= kDwTapsMax &&
        p->out_c <= kStackOutMax && multipliers_normal(p->multiplier, p->out_c)) {
        return depthwise_dm1_q4(p, in, out);
    }
    const int32_t ch = p->out_c;
    const int32_t body = ch & ~3;
    const int pc = p->per_channel != 0;
    const uint32_t zp8 = (uint32_t)(uint8_t)(int8_t)p->in_zp;
    const uint32_t zp_word = zp8 * 0x01010101u;
    const int8_t zp = (int8_t)p->in_zp;

    for (int32_t b = 0; b < p->batches; b++) {
        const int8_t* img = in + (size_t)b * p->in_h * p->in_w * ch;
        int8_t* dst = out + (size_t)b * p->out_h * p->out_w * ch;
        for (int32_t oy = 0; oy < p->out_h; oy++) {
            const int32_t y0 = oy * p->stride_h - p->pad_top;
            for (int32_t ox = 0; ox < p->out_w; ox++) {
                const int32_t x0 = ox * p->stride_w - p->pad_left;
                int32_t c = 0;
                for (; c < body; c += 4) {
                    int32_t a0 = p->bias_folded[c], a1 = p->bias_folded[c + 1];
                    int32_t a2 = p->bias_folded[c + 2], a3 = p->bias_folded[c + 3];
                    for (int32_t ky = 0; ky < p->k_h; ky++) {
                        const int32_t y = y0 + ky * p->dil_h;
                        const int row_ok = y >= 0 && y < p->in_h;
                        const int8_t* wk = p->weights + ((size_t)ky * p->k_w) * ch + c;
                        for (int32_t kx = 0; kx < p->k_w; kx++) {
                            const int32_t xx = x0 + kx * p->dil_w;
                            const uint32_t xv =
                                (row_ok && xx >= 0 && xx < p->in_w)
                                    ? ld32(img + ((size_t)y * p->in_w + xx) * ch + c)
                                    : zp_word;
                            const uint32_t wv = ld32(wk);
                            wk += ch;
                            const uint32_t x02 = __sxtb16(xv), x13 = sxtb16_ror8(xv);
                            const uint32_t w02 = __sxtb16(wv), w13 = sxtb16_ror8(wv);
                            a0 = __smlabb(x02, w02, a0);
                            a2 = __smlatt(x02, w02, a2);
                            a1 = __smlabb(x13, w13, a1);
                            a3 = __smlatt(x13, w13, a3);
                        }
                    }
                    int8_t* o = dst + ((size_t)oy * p->out_w + ox) * ch + c;
                    const int32_t acc[4] = {a0, a1, a2, a3};
                    for (int32_t r = 0; r < 4; r++) {
                        const int32_t q = pc ? c + r : 0;
                        o[r] = finish(acc[r], p->multiplier[q], p->shift[q], p->out_zp, p->act_min,
                                      p->act_max);
                    }
                }
                for (; c < ch; c++) {
                    int32_t acc = p->bias_folded[c];
                    for (int32_t ky = 0; ky < p->k_h; ky++) {
                        const int32_t y = y0 + ky * p->dil_h;
                        for (int32_t kx = 0; kx < p->k_w; kx++) {
                            const int32_t xx = x0 + kx * p->dil_w;
                            const int8_t xv = (y >= 0 && y < p->in_h && xx >= 0 && xx < p->in_w)
                                                  ? img[((size_t)y * p->in_w + xx) * ch + c]
                                                  : zp;
                            acc += (int32_t)xv * p->weights[((size_t)ky * p->k_w + kx) * ch + c];
                        }
                    }
                    const int32_t q = pc ? c : 0;
                    dst[((size_t)oy * p->out_w + ox) * ch + c] = finish(
                        acc, p->multiplier[q], p->shift[q], p->out_zp, p->act_min, p->act_max);
                }
            }
        }
    }
    return NT_OK;
}

#else
/* Not a DSP target: the c99 kernels serve. ISO C wants a declaration in every file. */
typedef int nt_depthwise_dsp_unused_t;
#endif /* __ARM_FEATURE_DSP */
