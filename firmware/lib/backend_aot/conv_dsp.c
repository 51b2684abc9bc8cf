/* Conv2d, Cortex-M4 DSP variant (bit-exact with conv_c99.c and TFLM): 2 output pixels x 2
 * channels x 4 taps per step (one LDM, one LDR per row: 15 instructions per 16 MACs) on an
 * im2col block gathered straight from the image through a tap-offset table; a 1-channel
 * input with 5-tap rows skips im2col; a fused max pool takes the max of the raw
 * accumulators and requantizes once. The dispatch (nt_conv2d_dsp) and the fast path are
 * here; kernels too large for the stack buffers take conv_staged_dsp.c. See simd_dsp.h.
 *
 * nt_dsp_conv_pairs (below), nt_dsp_c1k5_pair (conv_c1k5_dsp.c): the two hottest conv
 * loops, in assembly because GCC 12 does not fold the ROR into SXTB16 and spills the
 * accumulators and row pointers (AAPCS, r4-r11 saved). */
#include "kernels.h"

#if defined(__ARM_FEATURE_DSP)

#include "requant.h"
#include "simd_dsp.h"

/* 1-channel input, 5-tap rows (see conv_c1k5_ok): for output pixels a (window at r) and
 * b = a + 1 column, every channel pair of the widened weight table wt ([pair][k_h][A0 B0 C0 A1 B1
 * C1]), appends {a, b of channel 2i, a, b of 2i + 1} to acc, starting from the biases.
 * inw_count = in_w | (-k_h << 16): the row step in the low half, the row count in the high
 * half (counted up to the carry out, so one register serves both). pairs >= 1, k_h >= 1. */
void nt_dsp_c1k5_pair(const int8_t* r, uint32_t inw_count, const uint32_t* wt, uint32_t pairs,
                      const int32_t* bias, int32_t* acc);

__asm__(
    "  .text\n"
    "  .syntax unified\n"
    "  .thumb\n"
    "  .macro NT_DOT2X2_K4\n"
    "  ldmia r0!, {r4-r7}\n"
    "  ldr r8, [r1], #4\n"
    "  sxtb16 r9, r8\n"
    "  smlad r10, r9, r4, r10\n"
    "  smlad r11, r9, r6, r11\n"
    "  sxtb16 r9, r8, ror #8\n"
    "  smlad r10, r9, r5, r10\n"
    "  smlad r11, r9, r7, r11\n"
    "  ldr r8, [r2], #4\n"
    "  sxtb16 r9, r8\n"
    "  smlad r12, r9, r4, r12\n"
    "  smlad lr, r9, r6, lr\n"
    "  sxtb16 r9, r8, ror #8\n"
    "  smlad r12, r9, r5, r12\n"
    "  smlad lr, r9, r7, lr\n"
    "  .endm\n"
    "\n"
    "  .section .text.nt_dsp_conv_pairs,\"ax\",%progbits\n"
    "  .align 2\n"
    "  .global nt_dsp_conv_pairs\n"
    "  .hidden nt_dsp_conv_pairs\n"
    "  .type nt_dsp_conv_pairs, %function\n"
    "  .thumb_func\n"
    "nt_dsp_conv_pairs:\n"
    "  push {r4-r11, lr}\n"
    "  sub sp, #16\n"
    /* locals: [sp] cols, [sp+4] rows left (pairs), [sp+8] depth - 4 n4 + depth (row skip),
     * [sp+12] n4; args after the 9 saved registers: [sp+52] n4, [sp+56] bias, [sp+60] buf */
    "  str r0, [sp]\n"
    "  str r3, [sp, #4]\n"
    "  ldr r4, [sp, #52]\n"
    "  str r4, [sp, #12]\n"
    "  sub r5, r2, r4, lsl #2\n"
    "  add r5, r5, r2\n"
    "  str r5, [sp, #8]\n"
    "  add r2, r1, r2\n"
    "3:\n"
    "  ldr r9, [sp, #56]\n"
    "  ldmia r9!, {r10, r12}\n"
    "  str r9, [sp, #56]\n"
    "  mov r11, r10\n"
    "  mov lr, r12\n"
    "  ldr r0, [sp]\n"
    "  ldr r3, [sp, #12]\n"
    "  lsrs r3, r3, #1\n"
    "  bcc 1f\n"
    "  NT_DOT2X2_K4\n"
    "  cmp r3, #0\n"
    "  beq 2f\n"
    "1:\n"
    "  NT_DOT2X2_K4\n"
    "  NT_DOT2X2_K4\n"
    "  subs r3, r3, #1\n"
    "  bne 1b\n"
    "2:\n"
    "  ldr r9, [sp, #60]\n"
    "  stmia r9!, {r10, r11, r12, lr}\n"
    "  str r9, [sp, #60]\n"
    "  ldr r3, [sp, #8]\n"
    "  add r1, r1, r3\n"
    "  add r2, r2, r3\n"
    "  ldr r3, [sp, #4]\n"
    "  subs r3, r3, #1\n"
    "  str r3, [sp, #4]\n"
    "  bne 3b\n"
    "  add sp, #16\n"
    "  pop {r4-r11, pc}\n"
    "  .size nt_dsp_conv_pairs, .-nt_dsp_conv_pairs\n"
    "  .text\n");

/* For each of `pairs` row pairs (rows 2i, 2i+1 of w, `depth` bytes apart), starting from
 * acc = bias[2i], bias[2i], bias[2i+1], bias[2i+1], accumulates n4 quads of the interleaved
 * two-column block and appends {row0.a, row0.b, row1.a, row1.b} to buf: buf[2o] is output
 * channel o of column a, buf[2o + 1] of column b. pairs >= 1, n4 >= 1. */
void nt_dsp_conv_pairs(const uint32_t* cols, const int8_t* w, int32_t depth, uint32_t pairs,
                       uint32_t n4, const int32_t* bias, int32_t* buf);

/* Widen two int8 patches into one interleaved column block: per quad q the words
 * (a02, a13, b02, b13) that nt_dsp_dot2x2_k4 loads with one LDM. */
static void widen2_q4(const int8_t* a, const int8_t* b, int32_t n, uint32_t* dst) {
    for (int32_t k = 0; k < n; k += 4) {
        const uint32_t va = ld32(a + k);
        const uint32_t vb = ld32(b + k);
        dst[0] = __sxtb16(va);
        dst[1] = sxtb16_ror8(va);
        dst[2] = __sxtb16(vb);
        dst[3] = sxtb16_ror8(vb);
        dst += 4;
    }
}

/* One row against one column of an interleaved block (col points at its first word pair). */
static inline int32_t dot1_cols(const int8_t* w, const uint32_t* col, int32_t quads, int32_t acc) {
    for (int32_t q = 0; q < quads; q++) {
        const uint32_t v = ld32(w);
        w += 4;
        acc = __smlad(__sxtb16(v), col[0], acc);
        acc = __smlad(sxtb16_ror8(v), col[1], acc);
        col += 4;
    }
    return acc;
}

/* Halfword pack (PKHBT): low 16 bits of lo, low 16 bits of hi in the top half. */
static inline uint32_t pack16(int32_t lo, int32_t hi) {
    uint32_t r;
    __asm__("pkhbt %0, %1, %2, lsl #16" : "=r"(r) : "r"(lo), "r"(hi));
    return r;
}

/* For pixels whose window lies inside the image, the interleaved block is gathered straight
 * from the image through a table of tap offsets (tap k of the OHWI order sits at window origin
 * + off[k]), skipping the int8 staging copy: two offsets per word load, one LDRSB per tap and one
 * PKHBT per pair of taps. */
static inline void gather2_q4(const int8_t* ba, const int8_t* bb, const uint16_t* off,
                              int32_t quads, uint32_t* dst) {
    const uint32_t* o = (const uint32_t*)off;
    for (int32_t q = 0; q < quads; q++) {
        const uint32_t o01 = o[0];
        const uint32_t o23 = o[1];
        o += 2;
        const uint32_t k0 = o01 & 0xFFFFu, k1 = o01 >> 16, k2 = o23 & 0xFFFFu, k3 = o23 >> 16;
        dst[0] = pack16(ba[k0], ba[k2]);
        dst[1] = pack16(ba[k1], ba[k3]);
        dst[2] = pack16(bb[k0], bb[k2]);
        dst[3] = pack16(bb[k1], bb[k3]);
        dst += 4;
    }
}

static inline int window_inside(const nt_conv_params* p, int32_t oy, int32_t ox) {
    const int32_t y0 = oy * p->stride_h - p->pad_top;
    const int32_t x0 = ox * p->stride_w - p->pad_left;
    return y0 >= 0 && x0 >= 0 && y0 + (p->k_h - 1) * p->dil_h < p->in_h &&
           x0 + (p->k_w - 1) * p->dil_w < p->in_w;
}

/* Adds the up to 3 taps past the last whole quad: activations ta (column a), tb (column b),
 * weights at w + o * depth. */
static __attribute__((noinline)) void add_tail_taps(int32_t* acc, const int8_t* w, int32_t depth,
                                                    int32_t tail, const int8_t* ta,
                                                    const int8_t* tb, int32_t n) {
    if (tail == 1) { /* e.g. 5x5x1 kernels: one tap, a straight loop */
        const int32_t a0 = ta[0], b0 = tb[0];
        for (int32_t o = 0; o < n; o++, w += depth) {
            const int32_t wv = w[0];
            acc[2 * o] += a0 * wv;
            acc[2 * o + 1] += b0 * wv;
        }
        return;
    }
    for (int32_t o = 0; o < n; o++, w += depth) {
        int32_t va = acc[2 * o], vb = acc[2 * o + 1];
        for (int32_t k = 0; k < tail; k++) {
            va += (int32_t)ta[k] * w[k];
            vb += (int32_t)tb[k] * w[k];
        }
        acc[2 * o] = va;
        acc[2 * o + 1] = vb;
    }
}

/* What the interleaved conv path keeps between pixel pairs: the layer's constants copied to
 * locals once (the int8 output stores may alias any object as far as C is concerned, so GCC
 * would otherwise reload p's fields after each one) and its stack buffers. */
typedef struct {
    const nt_conv_params* p;
    const int8_t* img;
    int32_t depth, quads, body, tail, out_c;
    const int8_t* weights;
    const int32_t* bias;
    uint32_t* cols;
    const uint16_t* off;
    int8_t *pa, *pb;
    const uint32_t* c1wt; /* 1-channel 5-tap path: widened weights, or NULL */
    uint32_t c1inw;       /* its in_w | -k_h << 16 */
} conv_ctx;

/* The direct path for a 1-channel input with 5-tap rows (e.g. the cnn's first layer, 28x28x1,
 * 5x5), no im2col. For output pixels a = (y, x) and b = (y, x + 1), one kernel row reads
 * r = input row y + ky from column x: with L0 = r[0..3] and L2 = r[2..5],
 *   S0 = SXTB16(L0) = (r0, r2), S1 = SXTB16(L0 ror 8) = (r1, r3),
 *   S2 = SXTB16(L2) = (r2, r4), S3 = SXTB16(L2 ror 8) = (r3, r5),
 * and with the row's weights as int16 pairs A = (w0, w2), B = (w1, w3), C = (0, w4):
 *   a += S0.A + S1.B + S2.C,   b += S1.A + S2.B + S3.C   (six SMLAD for ten MACs),
 * so the two pixels share their unpacked inputs and no load leaves b's window. The weights are
 * widened once per call into the scratch (NT_CONV_C1_SCRATCH_BYTES). */
static int conv_c1k5_ok(const nt_conv_params* p) {
    return p->in_c == 1 && p->k_w == 5 && p->stride_w == 1 && p->dil_w == 1 && p->dil_h == 1 &&
           (p->out_c & 1) == 0 && p->k_h < 32768 && p->in_w < 65536;
}

/* Raw accumulators of output pixels a = (oya, oxa) and b = (oyb, oxb) for every channel, into
 * acc (channel-major: acc[2o] pixel a, acc[2o + 1] pixel b). b may equal a. */
static inline void conv_pair_acc(const conv_ctx* c, int32_t oya, int32_t oxa, int32_t oyb,
                                 int32_t oxb, int32_t* acc) {
    const nt_conv_params* p = c->p;
    const int8_t* pbp;
    if (c->c1wt != NULL && oyb == oya && oxb == oxa + 1 && window_inside(p, oya, oxa) &&
        window_inside(p, oyb, oxb)) {
        const int8_t* r =
            c->img + (size_t)(oya * p->stride_h - p->pad_top) * p->in_w + (oxa - p->pad_left);
        nt_dsp_c1k5_pair(r, c->c1inw, c->c1wt, (uint32_t)(c->out_c >> 1), c->bias, acc);
        return;
    }
    if (window_inside(p, oya, oxa) && window_inside(p, oyb, oxb)) {
        const int8_t* ba = c->img + ((size_t)(oya * p->stride_h - p->pad_top) * p->in_w +
                                     (oxa * p->stride_w - p->pad_left)) *
                                        p->in_c;
        const int8_t* bb = c->img + ((size_t)(oyb * p->stride_h - p->pad_top) * p->in_w +
                                     (oxb * p->stride_w - p->pad_left)) *
                                        p->in_c;
        gather2_q4(ba, bb, c->off, c->quads, c->cols);
        for (int32_t k = c->body; k < c->depth; k++) { /* the up to 3 taps past the last quad */
            c->pa[k] = ba[c->off[k]];
            c->pb[k] = bb[c->off[k]];
        }
        pbp = c->pb;
    } else {
        nt_dsp_im2col_patch(p, c->img, oya, oxa, c->pa);
        nt_dsp_im2col_patch(p, c->img, oyb, oxb, c->pb);
        pbp = c->pb;
        widen2_q4(c->pa, pbp, c->body, c->cols);
    }
    const int32_t pairs = c->out_c >> 1;
    if (pairs > 0) {
        nt_dsp_conv_pairs(c->cols, c->weights, c->depth, (uint32_t)pairs, (uint32_t)c->quads,
                          c->bias, acc);
    }
    if (c->out_c & 1) {
        const int32_t o = c->out_c - 1;
        const int8_t* w = c->weights + (size_t)o * c->depth;
        acc[2 * o] = dot1_cols(w, c->cols, c->quads, c->bias[o]);
        acc[2 * o + 1] = dot1_cols(w, c->cols + 2, c->quads, c->bias[o]);
    }
    if (c->tail > 0) {
        add_tail_taps(acc, c->weights + c->body, c->depth, c->tail, c->pa + c->body, pbp + c->body,
                      c->out_c);
    }
}

/* mx[2o + col] = max(acc[2o], acc[2o + 1]) (first) or max with it too (later window pairs). */
static __attribute__((noinline)) void max_cols(const int32_t* acc, int32_t* mx, int32_t n,
                                               int32_t col, int first) {
    for (int32_t o = 0; o < n; o++) {
        const int32_t a = acc[2 * o], b = acc[2 * o + 1];
        int32_t m = a > b ? a : b;
        if (!first) {
            const int32_t old = mx[2 * o + col];
            m = old > m ? old : m;
        }
        mx[2 * o + col] = m;
    }
}

static int conv2d_interleaved(const nt_conv_params* p, const int8_t* in, int8_t* out) {
    conv_ctx c;
    c.p = p;
    c.depth = p->k_h * p->k_w * p->in_c;
    c.quads = c.depth >> 2;
    c.body = c.quads << 2;
    c.tail = c.depth - c.body;
    c.out_c = p->out_c;
    c.weights = p->weights;
    c.bias = p->bias_folded;
    c.cols = (uint32_t*)p->scratch;
    const int32_t out_c = c.out_c;
    const int32_t out_w = p->out_w;
    const int32_t pixels = p->out_h * out_w;
    const int32_t out_zp = p->out_zp;
    const int32_t act_min = p->act_min;
    const int32_t act_max = p->act_max;
    const int full = act_min == -128 && act_max == 127;
    const int32_t* const mult = p->multiplier;
    const int32_t* const shift = p->shift;
    int8_t pa[kStackPatchMax] __attribute__((aligned(4)));
    int8_t pb[kStackPatchMax] __attribute__((aligned(4)));
    /* Tap offsets from the window origin, in OHWI tap order (the caller checked they fit). */
    uint16_t off[kStackPatchMax] __attribute__((aligned(4)));
    /* Raw accumulators of one pixel pair, channel-major: acc[2o] column a, acc[2o + 1] b. */
    int32_t acc[2 * kStackOutMax] __attribute__((aligned(8)));
    c.pa = pa;
    c.pb = pb;
    c.off = off;
    c.c1wt = NULL;
    c.c1inw = 0;
    if (conv_c1k5_ok(p)) {
        /* [channel pair][ky][A0 B0 C0 A1 B1 C1] after the columns (and the pooled maxima) */
        uint32_t* wt = (uint32_t*)((uint8_t*)p->scratch + 4 * (size_t)c.depth +
                                   (p->pool_h > 0 ? 8 * (size_t)out_c : 0));
        for (int32_t o = 0; o < out_c; o++) {
            for (int32_t ky = 0; ky < p->k_h; ky++) {
                const int8_t* w = p->weights + ((size_t)o * p->k_h + ky) * 5;
                uint32_t* d = wt + ((size_t)(o >> 1) * p->k_h + ky) * 6 + (o & 1) * 3;
                d[0] = pack16(w[0], w[2]);
                d[1] = pack16(w[1], w[3]);
                d[2] = pack16(0, w[4]);
            }
        }
        c.c1wt = wt;
        c.c1inw = (uint32_t)p->in_w | ((uint32_t)(-p->k_h) << 16);
    }
    {
        int32_t k = 0;
        for (int32_t ky = 0; ky < p->k_h; ky++) {
            for (int32_t kx = 0; kx < p->k_w; kx++) {
                for (int32_t ch = 0; ch < p->in_c; ch++) {
                    off[k++] =
                        (uint16_t)(((ky * p->dil_h * p->in_w) + kx * p->dil_w) * p->in_c + ch);
                }
            }
        }
    }
    const int32_t ph = p->pool_h, pw = p->pool_w;
    for (int32_t b = 0; b < p->batches; b++) {
        c.img = in + (size_t)b * p->in_h * p->in_w * p->in_c;
        if (ph > 0) {
            /* Fused max pool: the caller checked every shift <= 0, where requantization is
             * monotone, so the max of the requantized window is the requantized max accumulator.
             * Pooled pixels go in pairs (A, B) through mx (channel-major like acc), one
             * requantization per pair. */
            int32_t* mx = (int32_t*)((uint8_t*)p->scratch + 4 * (size_t)c.depth);
            const int32_t qw = out_w / pw;
            const int32_t qpix = (p->out_h / ph) * qw;
            const int32_t win = ph * pw;
            int8_t* dst = out + (size_t)b * qpix * out_c;
            for (int32_t q = 0; q < qpix; q += 2) {
                const int two = q + 1 < qpix;
                for (int32_t col = 0; col < 2; col++) {
                    const int32_t qq = col && two ? q + 1 : q;
                    const int32_t y0 = (qq / qw) * ph, x0 = (qq % qw) * pw;
                    for (int32_t i = 0; i < win; i += 2) {
                        const int32_t j = i + 1 < win ? i + 1 : i;
                        conv_pair_acc(&c, y0 + i / pw, x0 + i % pw, y0 + j / pw, x0 + j % pw, acc);
                        max_cols(acc, mx, out_c, col, i == 0);
                    }
                    if (!two) {
                        break; /* a lone last pooled pixel: its b slot is never stored */
                    }
                }
                int8_t* oa = dst + (size_t)q * out_c;
                int8_t* ob =
                    two ? oa + out_c : oa; /* lone pixel: b results land on a's, then a's */
                if (!two) {
                    for (int32_t o = 0; o < out_c; o++) {
                        mx[2 * o + 1] = mx[2 * o];
                    }
                }
                if (full) {
                    nt_dsp_requant_cols_ssat(mx, mult, shift, out_zp, out_c, oa,
                                             (int32_t)(ob - oa));
                } else {
                    nt_dsp_requant_cols_clamp(mx, mult, shift, out_zp, act_min, act_max, out_c, oa,
                                              (int32_t)(ob - oa));
                }
            }
            continue;
        }
        int8_t* dst = out + (size_t)b * pixels * out_c;
        for (int32_t pix = 0; pix < pixels; pix += 2) {
            const int two = pix + 1 < pixels;
            const int32_t oya = pix / out_w, oxa = pix % out_w;
            const int32_t oyb = two ? (pix + 1) / out_w : oya, oxb = two ? (pix + 1) % out_w : oxa;
            /* A lone last pixel is paired with itself; its b results are not stored. */
            conv_pair_acc(&c, oya, oxa, oyb, oxb, acc);
            int8_t* oa = dst + (size_t)pix * out_c;
            int8_t* ob = two ? oa + out_c : oa; /* lone pixel: b results land on a's, then a's */
            if (full) {
                nt_dsp_requant_cols_ssat(acc, mult, shift, out_zp, out_c, oa, (int32_t)(ob - oa));
            } else {
                nt_dsp_requant_cols_clamp(acc, mult, shift, out_zp, act_min, act_max, out_c, oa,
                                          (int32_t)(ob - oa));
            }
        }
    }
    return NT_OK;
}

/* The interleaved path's preconditions (kernels.h, nt_conv2d_fast): scratch present, 4..256
 * taps, tap offsets below 2^16, at most kStackOutMax channels, per-channel multipliers 0 or in
 * [2^30, 2^31); with a fused pool also every shift <= 0 (monotone requantization). */
int nt_conv2d_fast_ok_dsp(const nt_conv_params* p) {
    const int32_t taps = p->k_h * p->k_w * p->in_c;
    const int32_t max_off =
        (((p->k_h - 1) * p->dil_h * p->in_w) + (p->k_w - 1) * p->dil_w) * p->in_c + p->in_c - 1;
    if (p->weight_layout != NT_LAYOUT_TFLITE || p->scratch == NULL || taps < 4 ||
        taps > kStackPatchMax || max_off >= 65536 || p->out_c > kStackOutMax ||
        p->per_channel == 0 || !multipliers_normal(p->multiplier, p->out_c)) {
        return 0;
    }
    if (p->pool_h != 0 || p->pool_w != 0) {
        if (p->pool_h <= 0 || p->pool_w <= 0) {
            return 0;
        }
        for (int32_t o = 0; o < p->out_c; o++) {
            if (p->shift[o] > 0) {
                return 0;
            }
        }
    }
    return 1;
}

/* The generator checked nt_conv2d_fast_ok_dsp at export; only the bounds that keep the stack
 * buffers safe are checked again here (the multiplier scans would link more code). */
int nt_conv2d_fast_dsp(const nt_conv_params* p, const int8_t* in, int8_t* out) {
    const int32_t taps = p->k_h * p->k_w * p->in_c;
    if (p->scratch == NULL || taps < 4 || taps > kStackPatchMax || p->out_c > kStackOutMax) {
        return NT_ERR_PARAM;
    }
    return conv2d_interleaved(p, in, out);
}

int nt_conv2d_dsp(const nt_conv_params* p, const int8_t* in, int8_t* out) {
    if (p->weight_layout != NT_LAYOUT_TFLITE) {
        return NT_ERR_LAYOUT;
    }
    if (nt_conv2d_fast_ok_dsp(p)) {
        return conv2d_interleaved(p, in, out);
    }
    if (p->scratch == NULL || p->pool_h != 0 || p->pool_w != 0) {
        /* planned without scratch to fit an arena budget, or a fused pool the interleaved path
         * cannot take */
        return nt_conv2d_c99(p, in, out);
    }
    return nt_dsp_conv2d_staged(p, in, out);
}

#else
/* Not a DSP target: the c99 kernels serve. ISO C wants a declaration in every file. */
typedef int nt_conv_dsp_unused_t;
#endif /* __ARM_FEATURE_DSP */
