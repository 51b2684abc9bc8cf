/* Cortex-M4 DSP (SIMD) variants of the hot kernels: fully connected, conv2d, depthwise conv2d.
 *
 * Bit-exact with the c99 variants (kernels_c99.c) and TFLM: integer sums are exact whatever the
 * order, and requantization is the same function. Only the instruction count differs, which is
 * what QEMU's -icount measures, so the loops are shaped to execute few instructions per MAC:
 * - int8 pairs are split with SXTB16 (lanes 0 and 2) and SXTB16 ROR #8 (lanes 1 and 3), and two
 *   products are accumulated per SMLAD;
 * - activations are widened once into int16 scratch in that same (x0,x2),(x1,x3) lane order, so
 *   the inner loop loads 4 of them with one LDRD and shares them across several output rows;
 * - the input zero point is already folded into bias_folded by the generator (kernels.h), and
 *   padding taps are filled with in_zp, so the inner loops have no zero-point arithmetic.
 * Reads the NT_LAYOUT_TFLITE weight layout (any other returns NT_ERR_LAYOUT).
 */
#include "kernels.h"

#if defined(__ARM_FEATURE_DSP)

#include <arm_acle.h>
#include <string.h>

/* Unaligned 32-bit load: the Cortex-M4 does unaligned LDR in hardware and GCC emits one LDR. */
/* GCC 12's arm_acle.h has no __ror; this form compiles to a rotate that folds into SXTB16's
 * ROR #8 operand. */
static inline uint32_t ror32(uint32_t v, uint32_t r) { return (v >> r) | (v << (32u - r)); }

static inline uint32_t ld32(const void *p) {
  uint32_t v;
  memcpy(&v, p, sizeof(v));
  return v;
}

/* TFLM MultiplyByQuantizedMultiplier. Multipliers from the generator are in [0, 2^31), so the
 * saturating case of SaturatingRoundingDoublingHighMul (both INT32_MIN) cannot occur; with the
 * nudge 2^30 for a >= 0 and 1 - 2^30 for a < 0 and truncating division, TFLM's high multiply
 * equals floor((a*b + 2^30) / 2^31), one SMULL and a 64-bit add. */
static inline int32_t requant(int32_t acc, int32_t multiplier, int32_t shift) {
#ifdef NT_SINGLE_ROUNDING
  return nt_mul_q(acc, multiplier, shift);
#else
  if (multiplier < 0) {
    return nt_mul_q(acc, multiplier, shift);
  }
  const int32_t left = shift > 0 ? shift : 0;
  const int32_t right = shift > 0 ? 0 : -shift;
  const int32_t x = (int32_t)((uint32_t)acc << left);
  const int32_t high = (int32_t)(((int64_t)x * multiplier + ((int64_t)1 << 30)) >> 31);
  return nt_rdbpot(high, right);
#endif
}

static inline int8_t finish(int32_t acc, int32_t multiplier, int32_t shift, int32_t out_zp,
                            int32_t act_min, int32_t act_max) {
  int32_t v = requant(acc, multiplier, shift) + out_zp;
  v = v < act_min ? act_min : v;
  v = v > act_max ? act_max : v;
  return (int8_t)v;
}

/* Widen n int8 values (n a multiple of 4) to int16 in SMLAD lane order: each group of 4
 * (x0,x1,x2,x3) becomes the words (x0|x2<<16), (x1|x3<<16). */
static void widen_q4(const int8_t *in, int32_t n, uint32_t *dst) {
  for (int32_t k = 0; k < n; k += 4) {
    const uint32_t v = ld32(in + k);
    dst[0] = __sxtb16(v);
    dst[1] = __sxtb16(ror32(v, 8));
    dst += 2;
  }
}

/* acc[r] += sum over q quads of row r's weights (int8, rows `stride` bytes apart) times the
 * widened activations x (2 words per quad). Four rows share each activation load. */
static inline void dot4_rows(const int8_t *w, int32_t stride, const uint32_t *x, int32_t quads,
                             int32_t acc[4]) {
  const int8_t *w0 = w;
  const int8_t *w1 = w0 + stride;
  const int8_t *w2 = w1 + stride;
  const int8_t *w3 = w2 + stride;
  int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
  for (int32_t q = 0; q < quads; q++) {
    const uint32_t xa = x[0];
    const uint32_t xb = x[1];
    x += 2;
    uint32_t v = ld32(w0);
    w0 += 4;
    a0 = __smlad(__sxtb16(v), xa, a0);
    a0 = __smlad(__sxtb16(ror32(v, 8)), xb, a0);
    v = ld32(w1);
    w1 += 4;
    a1 = __smlad(__sxtb16(v), xa, a1);
    a1 = __smlad(__sxtb16(ror32(v, 8)), xb, a1);
    v = ld32(w2);
    w2 += 4;
    a2 = __smlad(__sxtb16(v), xa, a2);
    a2 = __smlad(__sxtb16(ror32(v, 8)), xb, a2);
    v = ld32(w3);
    w3 += 4;
    a3 = __smlad(__sxtb16(v), xa, a3);
    a3 = __smlad(__sxtb16(ror32(v, 8)), xb, a3);
  }
  acc[0] = a0;
  acc[1] = a1;
  acc[2] = a2;
  acc[3] = a3;
}

static inline int32_t dot1_row(const int8_t *w, const uint32_t *x, int32_t quads, int32_t acc) {
  for (int32_t q = 0; q < quads; q++) {
    const uint32_t v = ld32(w);
    w += 4;
    acc = __smlad(__sxtb16(v), x[0], acc);
    acc = __smlad(__sxtb16(ror32(v, 8)), x[1], acc);
    x += 2;
  }
  return acc;
}

/* ---- fully connected ----------------------------------------------------------------------- */

int nt_fully_connected_dsp(const nt_fc_params *p, const int8_t *in, int8_t *out) {
  if (p->weight_layout != NT_LAYOUT_TFLITE) {
    return NT_ERR_LAYOUT;
  }
  if (p->scratch == NULL || p->in_features <= 0 || p->out_features <= 0) {
    return NT_ERR_PARAM;
  }
  const int32_t depth = p->in_features;
  const int32_t quads = depth >> 2;
  const int32_t body = quads << 2;
  uint32_t *x = (uint32_t *)p->scratch;
  const int pc = p->per_channel != 0;

  for (int32_t b = 0; b < p->batches; b++) {
    const int8_t *row_in = in + (size_t)b * depth;
    int8_t *row_out = out + (size_t)b * p->out_features;
    widen_q4(row_in, body, x);
    int32_t o = 0;
    for (; o + 4 <= p->out_features; o += 4) {
      const int8_t *w = p->weights + (size_t)o * depth;
      int32_t acc[4] = {p->bias_folded[o], p->bias_folded[o + 1], p->bias_folded[o + 2],
                        p->bias_folded[o + 3]};
      dot4_rows(w, depth, x, quads, acc);
      for (int32_t r = 0; r < 4; r++) {
        const int8_t *wr = w + (size_t)r * depth;
        for (int32_t k = body; k < depth; k++) {
          acc[r] += (int32_t)row_in[k] * wr[k];
        }
        const int32_t c = pc ? o + r : 0;
        row_out[o + r] = finish(acc[r], p->multiplier[c], p->shift[c], p->out_zp, p->act_min,
                                p->act_max);
      }
    }
    for (; o < p->out_features; o++) {
      const int8_t *w = p->weights + (size_t)o * depth;
      int32_t acc = dot1_row(w, x, quads, p->bias_folded[o]);
      for (int32_t k = body; k < depth; k++) {
        acc += (int32_t)row_in[k] * w[k];
      }
      const int32_t c = pc ? o : 0;
      row_out[o] = finish(acc, p->multiplier[c], p->shift[c], p->out_zp, p->act_min, p->act_max);
    }
  }
  return NT_OK;
}

/* ---- conv2d -------------------------------------------------------------------------------- */

/* One int8 im2col patch for output pixel (oy, ox): the k_h*k_w*in_c taps in OHWI order, with
 * padding taps = in_zp (the folded-bias contract). */
static void im2col_patch(const nt_conv_params *p, const int8_t *in, int32_t oy, int32_t ox,
                         int8_t *patch) {
  const int32_t in_c = p->in_c;
  const int32_t row_bytes = p->k_w * in_c;
  const int32_t y0 = oy * p->stride_h - p->pad_top;
  const int32_t x0 = ox * p->stride_w - p->pad_left;
  const int contiguous = p->dil_w == 1 && x0 >= 0 && x0 + p->k_w <= p->in_w;
  for (int32_t ky = 0; ky < p->k_h; ky++) {
    const int32_t y = y0 + ky * p->dil_h;
    if (y < 0 || y >= p->in_h) {
      memset(patch, (int)(int8_t)p->in_zp, (size_t)row_bytes);
    } else if (contiguous) {
      memcpy(patch, in + ((size_t)y * p->in_w + x0) * in_c, (size_t)row_bytes);
    } else {
      for (int32_t kx = 0; kx < p->k_w; kx++) {
        const int32_t xx = x0 + kx * p->dil_w;
        if (xx < 0 || xx >= p->in_w) {
          memset(patch + kx * in_c, (int)(int8_t)p->in_zp, (size_t)in_c);
        } else {
          memcpy(patch + kx * in_c, in + ((size_t)y * p->in_w + xx) * in_c, (size_t)in_c);
        }
      }
    }
    patch += row_bytes;
  }
}

/* Two output pixels (columns ca, cb) x two output channels (rows w0, w1) per pass: each weight
 * word is unpacked once for two pixels and each activation pair serves two channels. */
static inline void dot2x2(const int8_t *w0, const int8_t *w1, const uint32_t *ca,
                          const uint32_t *cb, int32_t quads, int32_t acc[4]) {
  int32_t a00 = acc[0], a01 = acc[1], a10 = acc[2], a11 = acc[3];
  for (int32_t q = 0; q < quads; q++) {
    const uint32_t xa0 = ca[0], xa1 = ca[1];
    const uint32_t xb0 = cb[0], xb1 = cb[1];
    ca += 2;
    cb += 2;
    uint32_t v = ld32(w0);
    w0 += 4;
    uint32_t lo = __sxtb16(v);
    uint32_t hi = __sxtb16(ror32(v, 8));
    a00 = __smlad(lo, xa0, a00);
    a00 = __smlad(hi, xa1, a00);
    a01 = __smlad(lo, xb0, a01);
    a01 = __smlad(hi, xb1, a01);
    v = ld32(w1);
    w1 += 4;
    lo = __sxtb16(v);
    hi = __sxtb16(ror32(v, 8));
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

int nt_conv2d_dsp(const nt_conv_params *p, const int8_t *in, int8_t *out) {
  if (p->weight_layout != NT_LAYOUT_TFLITE) {
    return NT_ERR_LAYOUT;
  }
  if (p->scratch == NULL) {
    return NT_ERR_PARAM;
  }
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
  uint8_t *scratch = (uint8_t *)p->scratch;
  uint32_t *col_a = (uint32_t *)scratch;
  uint32_t *col_b = (uint32_t *)(scratch + 2 * (size_t)body);
  int8_t *patch = (int8_t *)(scratch + 3 * (size_t)depth);
  int8_t tail_a[4] = {0, 0, 0, 0};
  int8_t tail_b[4] = {0, 0, 0, 0};

  const int32_t pixels = p->out_h * p->out_w;
  for (int32_t b = 0; b < p->batches; b++) {
    const int8_t *img = in + (size_t)b * p->in_h * p->in_w * p->in_c;
    int8_t *dst = out + (size_t)b * pixels * out_c;
    for (int32_t pix = 0; pix < pixels; pix += 2) {
      const int two = pix + 1 < pixels;
      im2col_patch(p, img, pix / p->out_w, pix % p->out_w, patch);
      for (int32_t k = body; k < depth; k++) {
        tail_a[k - body] = patch[k];
      }
      widen_q4(patch, body, col_a);
      if (two) {
        im2col_patch(p, img, (pix + 1) / p->out_w, (pix + 1) % p->out_w, patch);
        for (int32_t k = body; k < depth; k++) {
          tail_b[k - body] = patch[k];
        }
        widen_q4(patch, body, col_b);
      }
      int8_t *oa = dst + (size_t)pix * out_c;
      int8_t *ob = oa + out_c;
      int32_t o = 0;
      if (two) {
        for (; o + 2 <= out_c; o += 2) {
          const int8_t *w0 = p->weights + (size_t)o * depth;
          const int8_t *w1 = w0 + depth;
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
          oa[o + 1] = finish(acc[2], p->multiplier[c1], p->shift[c1], p->out_zp, p->act_min,
                             p->act_max);
          ob[o + 1] = finish(acc[3], p->multiplier[c1], p->shift[c1], p->out_zp, p->act_min,
                             p->act_max);
        }
      }
      for (; o < out_c; o++) {
        const int8_t *w = p->weights + (size_t)o * depth;
        const int32_t c = pc ? o : 0;
        int32_t acc = dot1_row(w, col_a, quads, p->bias_folded[o]);
        for (int32_t k = body; k < depth; k++) {
          acc += (int32_t)tail_a[k - body] * w[k];
        }
        oa[o] = finish(acc, p->multiplier[c], p->shift[c], p->out_zp, p->act_min, p->act_max);
        if (two) {
          acc = dot1_row(w, col_b, quads, p->bias_folded[o]);
          for (int32_t k = body; k < depth; k++) {
            acc += (int32_t)tail_b[k - body] * w[k];
          }
          ob[o] = finish(acc, p->multiplier[c], p->shift[c], p->out_zp, p->act_min, p->act_max);
        }
      }
    }
  }
  return NT_OK;
}

/* ---- depthwise conv2d ---------------------------------------------------------------------- */

/* Any depth multiplier, one output channel at a time (rare in the zoo: MobileNet uses 1). */
static int depthwise_generic(const nt_conv_params *p, const int8_t *in, int8_t *out) {
  const int32_t dm = p->depth_multiplier;
  const int pc = p->per_channel != 0;
  for (int32_t b = 0; b < p->batches; b++) {
    const int8_t *img = in + (size_t)b * p->in_h * p->in_w * p->in_c;
    int8_t *dst = out + (size_t)b * p->out_h * p->out_w * p->out_c;
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
          dst[((size_t)oy * p->out_w + ox) * p->out_c + o] =
              finish(acc, p->multiplier[q], p->shift[q], p->out_zp, p->act_min, p->act_max);
        }
      }
    }
  }
  return NT_OK;
}

/* Four channels per step: one LDR brings 4 int8 activations of one tap and one LDR 4 weights;
 * SXTB16 splits lanes (0,2) and (1,3), and SMLABB / SMLATT accumulate each lane into its own
 * channel. Padding taps use a word of four in_zp bytes (folded-bias contract). */
int nt_depthwise_conv2d_dsp(const nt_conv_params *p, const int8_t *in, int8_t *out) {
  if (p->weight_layout != NT_LAYOUT_TFLITE) {
    return NT_ERR_LAYOUT;
  }
  if (p->depth_multiplier != 1) {
    return depthwise_generic(p, in, out);
  }
  const int32_t ch = p->out_c;
  const int32_t body = ch & ~3;
  const int pc = p->per_channel != 0;
  const uint32_t zp8 = (uint32_t)(uint8_t)(int8_t)p->in_zp;
  const uint32_t zp_word = zp8 * 0x01010101u;
  const int8_t zp = (int8_t)p->in_zp;

  for (int32_t b = 0; b < p->batches; b++) {
    const int8_t *img = in + (size_t)b * p->in_h * p->in_w * ch;
    int8_t *dst = out + (size_t)b * p->out_h * p->out_w * ch;
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
            const int8_t *wk = p->weights + ((size_t)ky * p->k_w) * ch + c;
            for (int32_t kx = 0; kx < p->k_w; kx++) {
              const int32_t xx = x0 + kx * p->dil_w;
              const uint32_t xv = (row_ok && xx >= 0 && xx < p->in_w)
                                      ? ld32(img + ((size_t)y * p->in_w + xx) * ch + c)
                                      : zp_word;
              const uint32_t wv = ld32(wk);
              wk += ch;
              const uint32_t x02 = __sxtb16(xv), x13 = __sxtb16(ror32(xv, 8));
              const uint32_t w02 = __sxtb16(wv), w13 = __sxtb16(ror32(wv, 8));
              a0 = __smlabb(x02, w02, a0);
              a2 = __smlatt(x02, w02, a2);
              a1 = __smlabb(x13, w13, a1);
              a3 = __smlatt(x13, w13, a3);
            }
          }
          int8_t *o = dst + ((size_t)oy * p->out_w + ox) * ch + c;
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
          dst[((size_t)oy * p->out_w + ox) * ch + c] =
              finish(acc, p->multiplier[q], p->shift[q], p->out_zp, p->act_min, p->act_max);
        }
      }
    }
  }
  return NT_OK;
}

#endif /* __ARM_FEATURE_DSP */
