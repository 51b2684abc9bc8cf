/* Conv2d, Cortex-M4 DSP variant, the scratch-staged path (nt_dsp_conv2d_staged) for kernels
 * too large for conv_dsp.c's stack buffers or with per-tensor / unusual multipliers, and
 * the int8 im2col patch both paths use for windows that leave the image. */
#include "kernels.h"

#if defined(__ARM_FEATURE_DSP)

#include "requant.h"
#include "simd_dsp.h"

/* One int8 im2col patch for output pixel (oy, ox): the k_h*k_w*in_c taps in OHWI order, with
 * padding taps = in_zp (the folded-bias contract). */
void nt_dsp_im2col_patch(const nt_conv_params* p, const int8_t* in, int32_t oy, int32_t ox,
                         int8_t* patch) {
    const int32_t in_c = p->in_c;
    const int32_t row_bytes = p->k_w * in_c;
    const int32_t y0 = oy * p->stride_h - p->pad_top;
    const int32_t x0 = ox * p->stride_w - p->pad_left;
    const int contiguous = p->dil_w == 1 && x0 >= 0 && x0 + p->k_w <= p->in_w;
    if (contiguous && y0 >= 0 && y0 + (p->k_h - 1) * p->dil_h < p->in_h) {
        /* The whole window is inside the image (every pixel of a VALID conv): rows only. */
        const int8_t* src = in + ((size_t)y0 * p->in_w + x0) * in_c;
        const int32_t src_step = p->dil_h * p->in_w * in_c;
        for (int32_t ky = 0; ky < p->k_h; ky++) {
            copy_small(patch, src, row_bytes);
            patch += row_bytes;
            src += src_step;
        }
        return;
    }
    for (int32_t ky = 0; ky < p->k_h; ky++) {
        const int32_t y = y0 + ky * p->dil_h;
        if (y < 0 || y >= p->in_h) {
            memset(patch, (int)(int8_t)p->in_zp, (size_t)row_bytes);
        } else if (contiguous) {
            copy_small(patch, in + ((size_t)y * p->in_w + x0) * in_c, row_bytes);
        } else {
            for (int32_t kx = 0; kx < p->k_w; kx++) {
                const int32_t xx = x0 + kx * p->dil_w;
                if (xx < 0 || xx >= p->in_w) {
                    memset(patch + kx * in_c, (int)(int8_t)p->in_zp, (size_t)in_c);
                } else {
                    copy_small(patch + kx * in_c, in + ((size_t)y * p->in_w + xx) * in_c, in_c);
                }
            }
        }
        patch += row_bytes;
    }
}

/* Two output pixels (columns ca, cb) x two output channels (rows w0, w1) per pass: each weight
 * word is unpacked once for two pixels and each activation pair serves two channels. */
static inline void dot2x2(const int8_t* w0, const int8_t* w1, const uint32_t* ca,
                          const uint32_t* cb, int32_t quads, int32_t acc[4]) {
    int32_t a00 = acc[0], a01 = acc[1], a10 = acc[2], a11 = acc[3];
    for (int32_t q = 0; q < quads; q++) {
        const uint32_t xa0 = ca[0], xa1 = ca[1];
        const uint32_t xb0 = cb[0], xb1 = cb[1];
        ca += 2;
        cb += 2;
        uint32_t v = ld32(w0);
        w0 += 4;
        uint32_t lo = __sxtb16(v);
        uint32_t hi = sxtb16_ror8(v);
        a00 = __smlad(lo, xa0, a00);
        a00 = __smlad(hi, xa1, a00);
        a01 = __smlad(lo, xb0, a01);
        a01 = __smlad(hi, xb1, a01);
        v = ld32(w1);
        w1 += 4;
        lo = __sxtb16(v);
        hi = sxtb16_ror8(v);
        a10 = __smlad(lo, xa0, a10);
        a10 = __smlad(hi, xa1, a10);
        a11 = __smlad(lo, xb0, a11);
        a11 = __smlad(hi, xb1, a11);
    }
    acc[0] = a00;
    acc[1] = a01;
    acc[2] = a10;
    acc[3] = a11;
}

/* Kernels too large for the interleaved path (more than kStackPatchMax taps or kStackOutMax
 * channels) or with per-tensor / unusual multipliers: rare in small models, so compiled for
 * size (it would otherwise be the largest function in the image). */
__attribute__((noinline, optimize("Os"))) int nt_dsp_conv2d_staged(const nt_conv_params* p,
                                                                   const int8_t* in, int8_t* out) {
    const int32_t depth = p->k_h * p->k_w * p->in_c;
    const int32_t quads = depth >> 2;
    const int32_t body = quads << 2;
    const int32_t out_c = p->out_c;
    const int pc = p->per_channel != 0;
    /* Scratch is NT_CONV_SCRATCH_BYTES = 4 * depth bytes: widened column a in [0, 2 body),
     * column b in [2 body, 4 body) (word aligned: body is a multiple of 4, and LDRD needs it).
     * Each int8 patch is gathered into [3 depth, 4 depth) and widened from there; for column b
     * that is in place, which is safe because quad q is written to [2 body + 8q, +8) only after
     * it was read, and 2 body + 8q + 8 <= 3 depth + 4(q + 1) for every quad q < body / 4: writes
     * never reach an unread quad. The up to 3 taps past the last whole quad are kept as int8 in
     * small local buffers. */
    uint8_t* scratch = (uint8_t*)p->scratch;
    uint32_t* col_a = (uint32_t*)scratch;
    uint32_t* col_b = (uint32_t*)(scratch + 2 * (size_t)body);
    int8_t* patch = (int8_t*)(scratch + 3 * (size_t)depth);
    int8_t tail_a[4] = {0, 0, 0, 0};
    int8_t tail_b[4] = {0, 0, 0, 0};

    const int32_t pixels = p->out_h * p->out_w;
    for (int32_t b = 0; b < p->batches; b++) {
        const int8_t* img = in + (size_t)b * p->in_h * p->in_w * p->in_c;
        int8_t* dst = out + (size_t)b * pixels * out_c;
        for (int32_t pix = 0; pix < pixels; pix += 2) {
            const int two = pix + 1 < pixels;
            nt_dsp_im2col_patch(p, img, pix / p->out_w, pix % p->out_w, patch);
            for (int32_t k = body; k < depth; k++) {
                tail_a[k - body] = patch[k];
            }
            widen_q4(patch, body, col_a);
            if (two) {
                nt_dsp_im2col_patch(p, img, (pix + 1) / p->out_w, (pix + 1) % p->out_w, patch);
                for (int32_t k = body; k < depth; k++) {
                    tail_b[k - body] = patch[k];
                }
                widen_q4(patch, body, col_b);
            }
            int8_t* oa = dst + (size_t)pix * out_c;
            int8_t* ob = oa + out_c;
            int32_t o = 0;
            if (two) {
                for (; o + 2 <= out_c; o += 2) {
                    const int8_t* w0 = p->weights + (size_t)o * depth;
                    const int8_t* w1 = w0 + depth;
                    int32_t acc[4] = {p->bias_folded[o], p->bias_folded[o], p->bias_folded[o + 1],
                                      p->bias_folded[o + 1]};
                    dot2x2(w0, w1, col_a, col_b, quads, acc);
                    for (int32_t k = body; k < depth; k++) {
                        acc[0] += (int32_t)tail_a[k - body] * w0[k];
                        acc[1] += (int32_t)tail_b[k - body] * w0[k];
                        acc[2] += (int32_t)tail_a[k - body] * w1[k];
                        acc[3] += (int32_t)tail_b[k - body] * w1[k];
                    }
                    const int32_t c0 = pc ? o : 0;
                    const int32_t c1 = pc ? o + 1 : 0;
                    oa[o] = finish(acc[0], p->multiplier[c0], p->shift[c0], p->out_zp, p->act_min,
                                   p->act_max);
                    ob[o] = finish(acc[1], p->multiplier[c0], p->shift[c0], p->out_zp, p->act_min,
                                   p->act_max);
                    oa[o + 1] = finish(acc[2], p->multiplier[c1], p->shift[c1], p->out_zp,
                                       p->act_min, p->act_max);
                    ob[o + 1] = finish(acc[3], p->multiplier[c1], p->shift[c1], p->out_zp,
                                       p->act_min, p->act_max);
                }
            }
            for (; o < out_c; o++) {
                const int8_t* w = p->weights + (size_t)o * depth;
                const int32_t c = pc ? o : 0;
                int32_t acc = dot1_row(w, col_a, quads, p->bias_folded[o]);
                for (int32_t k = body; k < depth; k++) {
                    acc += (int32_t)tail_a[k - body] * w[k];
                }
                oa[o] =
                    finish(acc, p->multiplier[c], p->shift[c], p->out_zp, p->act_min, p->act_max);
                if (two) {
                    acc = dot1_row(w, col_b, quads, p->bias_folded[o]);
                    for (int32_t k = body; k < depth; k++) {
                        acc += (int32_t)tail_b[k - body] * w[k];
                    }
                    ob[o] = finish(acc, p->multiplier[c], p->shift[c], p->out_zp, p->act_min,
                                   p->act_max);
                }
            }
        }
    }
    return NT_OK;
}

#else
/* Not a DSP target: the c99 kernels serve. ISO C wants a declaration in every file. */
typedef int nt_conv_staged_dsp_unused_t;
#endif /* __ARM_FEATURE_DSP */
