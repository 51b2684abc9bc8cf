/* Fully connected, Cortex-M4 DSP variant (bit-exact with fully_connected_c99.c and TFLM):
 * NT_LAYOUT_FC_STACKED runs 2 rows x 8 inputs per step on weights the generator interleaved
 * offline (one LDM of activations, one LDM of weights, each weight word used once as it is and
 * unpacked once: 14 instructions per 16 MACs);
 * NT_LAYOUT_TFLITE (odd depth, older generated code) 2 rows with LDRD. See simd_dsp.h. */
#include "kernels.h"

#if defined(__ARM_FEATURE_DSP)

#include "requant.h"
#include "simd_dsp.h"

/* ---- hand-scheduled inner loops ------------------------------------------------------------
 * Under -icount the cost is the instruction count, and GCC 12 neither folds the ROR into SXTB16
 * nor keeps four row pointers, four accumulators and the activations in registers (it spills),
 * so the two hottest loops are written in assembly. Both follow the AAPCS (r4-r11 saved).
 *
 * nt_dsp_dot2_k8(x, w0, w1, n8, acc): acc[r] += sum_{k < 8 n8} x[k] * wr[k] for rows w0, w1.
 *   x: widened activations, 4 words per 8 inputs (widen_q4 order), word aligned;
 *   w0, w1: int8 rows, word aligned (LDRD); n8 >= 1. 19 instructions per 16 MACs, loop
 *   unrolled twice. */
__asm__(
    "  .text\n"
    "  .syntax unified\n"
    "  .thumb\n"
    "  .macro NT_DOT2_K8\n"
    "  ldmia r0!, {r4-r7}\n"
    "  ldrd r8, r9, [r1], #8\n"
    "  sxtb16 r10, r8\n"
    "  smlad r11, r10, r4, r11\n"
    "  sxtb16 r10, r8, ror #8\n"
    "  smlad r11, r10, r5, r11\n"
    "  sxtb16 r10, r9\n"
    "  smlad r11, r10, r6, r11\n"
    "  sxtb16 r10, r9, ror #8\n"
    "  smlad r11, r10, r7, r11\n"
    "  ldrd r8, r9, [r2], #8\n"
    "  sxtb16 r10, r8\n"
    "  smlad r12, r10, r4, r12\n"
    "  sxtb16 r10, r8, ror #8\n"
    "  smlad r12, r10, r5, r12\n"
    "  sxtb16 r10, r9\n"
    "  smlad r12, r10, r6, r12\n"
    "  sxtb16 r10, r9, ror #8\n"
    "  smlad r12, r10, r7, r12\n"
    "  .endm\n"
    "\n"
    "  .section .text.nt_dsp_dot2_k8,\"ax\",%progbits\n"
    "  .align 2\n"
    "  .global nt_dsp_dot2_k8\n"
    "  .hidden nt_dsp_dot2_k8\n"
    "  .type nt_dsp_dot2_k8, %function\n"
    "  .thumb_func\n"
    "nt_dsp_dot2_k8:\n"
    "  push {r4-r11, lr}\n"
    "  ldr lr, [sp, #36]\n"
    "  ldrd r11, r12, [lr]\n"
    "  lsrs r3, r3, #1\n"
    "  bcc 1f\n"
    "  NT_DOT2_K8\n"
    "  cmp r3, #0\n"
    "  beq 2f\n"
    "1:\n"
    "  NT_DOT2_K8\n"
    "  NT_DOT2_K8\n"
    "  subs r3, r3, #1\n"
    "  bne 1b\n"
    "2:\n"
    "  strd r11, r12, [lr]\n"
    "  pop {r4-r11, pc}\n"
    "  .size nt_dsp_dot2_k8, .-nt_dsp_dot2_k8\n"
    "\n"
    /* NT_LAYOUT_FC_STACKED: a weight word W read as int16 lanes is 256 w1 + w0 + 128 for two
     * inputs (w0 of row 2j, w1 of row 2j + 1), so SMLAD(W, x) adds (row 2j) + 256 (row 2j + 1)
     * + 128 (x sum) to r2, and SXTB16(W ROR 8) = (w1, w1') adds row 2j + 1 alone to r3: 3
     * instructions per 4 MACs, no temporary. r2 wraps mod 2^32; the exact row 2j sum is
     * r2 - 256 r3 - 128 sum(x) (its initial value holds the last term). */
    "  .macro NT_FC_BLOCK\n"
    "  ldmia r0!, {r4-r7}\n"
    "  ldmia r1!, {r8-r11}\n"
    "  smlad r2, r8, r4, r2\n"
    "  sxtb16 r8, r8, ror #8\n"
    "  smlad r3, r8, r4, r3\n"
    "  smlad r2, r9, r5, r2\n"
    "  sxtb16 r9, r9, ror #8\n"
    "  smlad r3, r9, r5, r3\n"
    "  smlad r2, r10, r6, r2\n"
    "  sxtb16 r10, r10, ror #8\n"
    "  smlad r3, r10, r6, r3\n"
    "  smlad r2, r11, r7, r2\n"
    "  sxtb16 r11, r11, ror #8\n"
    "  smlad r3, r11, r7, r3\n"
    "  .endm\n"
    "  .section .text.nt_dsp_fc_pairs,\"ax\",%progbits\n"
    "  .align 2\n"
    "  .global nt_dsp_fc_pairs\n"
    "  .hidden nt_dsp_fc_pairs\n"
    "  .type nt_dsp_fc_pairs, %function\n"
    "  .thumb_func\n"
    "nt_dsp_fc_pairs:\n"
    "  push {r4-r11, lr}\n"
    "  sub sp, #16\n"
    /* locals: [sp] x, [sp+4] n8 % 4, [sp+8] n8 / 4, [sp+12] pairs left;
     * args after the 9 saved registers: [sp+52] bias, [sp+56] acc, [sp+60] skip, [sp+64] xsum128 */
    "  str r0, [sp]\n"
    "  and r4, r2, #3\n"
    "  str r4, [sp, #4]\n"
    "  lsr r4, r2, #2\n"
    "  str r4, [sp, #8]\n"
    "  str r3, [sp, #12]\n"
    "3:\n"
    "  ldr r12, [sp, #52]\n"
    "  ldrd r2, r3, [r12], #8\n"
    "  str r12, [sp, #52]\n"
    "  add r2, r2, r3, lsl #8\n"
    "  ldr r12, [sp, #64]\n"
    "  sub r2, r2, r12\n"
    "  ldr r0, [sp]\n"
    "  ldr lr, [sp, #4]\n"
    "  cmp lr, #0\n"
    "  beq 5f\n"
    "4:\n"
    "  NT_FC_BLOCK\n"
    "  subs lr, lr, #1\n"
    "  bne 4b\n"
    "5:\n"
    "  ldr lr, [sp, #8]\n"
    "  cmp lr, #0\n"
    "  beq 7f\n"
    "6:\n"
    "  NT_FC_BLOCK\n"
    "  NT_FC_BLOCK\n"
    "  NT_FC_BLOCK\n"
    "  NT_FC_BLOCK\n"
    "  subs lr, lr, #1\n"
    "  bne 6b\n"
    "7:\n"
    "  sub r2, r2, r3, lsl #8\n"
    "  ldr r12, [sp, #56]\n"
    "  strd r2, r3, [r12], #8\n"
    "  str r12, [sp, #56]\n"
    "  ldr r12, [sp, #60]\n"
    "  add r1, r1, r12\n"
    "  ldr r12, [sp, #12]\n"
    "  subs r12, r12, #1\n"
    "  str r12, [sp, #12]\n"
    "  bne 3b\n"
    "  add sp, #16\n"
    "  pop {r4-r11, pc}\n"
    "  .size nt_dsp_fc_pairs, .-nt_dsp_fc_pairs\n"
    "  .text\n");

void nt_dsp_dot2_k8(const uint32_t* x, const int8_t* w0, const int8_t* w1, uint32_t n8,
                    int32_t acc[2]);
/* Fully connected, NT_LAYOUT_FC_STACKED: for each of `pairs` row pairs (starting at w, each
 * 16 * n8 + skip bytes long), acc[2i], acc[2i + 1] = bias[2i], bias[2i + 1] + the first 8 n8
 * inputs (x widened by widen_q4) times the two rows; xsum128 = 128 x the sum of those inputs.
 * One LDM of activations and one of weights per 8 inputs of both rows: 14 instructions per 16
 * MACs, loop unrolled four times. w word aligned (LDM), pairs >= 1 (n8 = 0: acc = bias). */
void nt_dsp_fc_pairs(const uint32_t* x, const int8_t* w, uint32_t n8, uint32_t pairs,
                     const int32_t* bias, int32_t* acc, uint32_t skip, int32_t xsum128);

/* ---- fully connected ----------------------------------------------------------------------- */

static int fc_tflite(const nt_fc_params* p, const int8_t* in, int8_t* out);
/* kernels.h declares the dsp entry points only when the dsp variant is selected; this file
 * is compiled for NANO_TFLM_FORCE_C99 images too. */
int nt_fully_connected_fast_dsp(const nt_fc_params* p, const int8_t* in, int8_t* out);

int nt_fully_connected_dsp(const nt_fc_params* p, const int8_t* in, int8_t* out) {
    if (p->scratch == NULL) {
        return nt_fully_connected_c99(p, in, out); /* planned without scratch to fit a budget */
    }
    if (p->in_features <= 0 || p->out_features <= 0) {
        return NT_ERR_PARAM;
    }
    if (p->weight_layout == NT_LAYOUT_FC_STACKED) {
        return nt_fully_connected_fast_dsp(p, in, out);
    }
    if (p->weight_layout != NT_LAYOUT_TFLITE) {
        return NT_ERR_LAYOUT;
    }
    return fc_tflite(p, in, out);
}

/* widen_q4 of the first 4 quads inputs, returning 128 x the sum of the first 8 n8 of them
 * (2 n8 <= quads): the term nt_dsp_fc_pairs takes out of the stacked sums. */
static int32_t widen_xsum128(const int8_t* in, int32_t n8, int32_t quads, uint32_t* dst) {
    int32_t sum = 0;
    for (int32_t q = 0; q < 2 * n8; q++) {
        const uint32_t v = ld32(in + 4 * q);
        const uint32_t lo = __sxtb16(v), hi = sxtb16_ror8(v);
        dst[2 * q] = lo;
        dst[2 * q + 1] = hi;
        sum = __smlad(lo, 0x00800080u, sum); /* 128 (x0 + x2) */
        sum = __smlad(hi, 0x00800080u, sum);
    }
    widen_q4(in + 8 * n8, (quads - 2 * n8) << 2, dst + 4 * n8);
    return sum;
}

/* out[i] = acc[i] of rows o0 + i (i < n) requantized: finish_norm when every multiplier is 0
 * or in [2^30, 2^31) (what the generator emits), else finish. One copy for pairs and odd row. */
static void fc_requant(const nt_fc_params* p, const int32_t* acc, int32_t o0, int32_t n,
                       int8_t* out, int normal) {
    const int pc = p->per_channel != 0;
    const int full = p->act_min == -128 && p->act_max == 127;
    for (int32_t i = 0; i < n; i++) {
        const int32_t c = pc ? o0 + i : 0;
        out[i] = normal ? (int8_t)finish_norm(acc[i], p->multiplier[c], p->shift[c], p->out_zp,
                                              full, p->act_min, p->act_max)
                        : finish(acc[i], p->multiplier[c], p->shift[c], p->out_zp, p->act_min,
                                 p->act_max);
    }
}

/* NT_LAYOUT_FC_STACKED with its scratch (the generator calls this one directly): the input row
 * is widened once, nt_dsp_fc_pairs runs every row pair's first 8 n8 inputs in one call per
 * chunk of kFcChunk pairs, then the in_features % 8 remaining inputs, an odd last row and the
 * requantization follow in C. */
enum { kFcChunk = 32 };

int nt_fully_connected_fast_dsp(const nt_fc_params* p, const int8_t* in, int8_t* out) {
    const int32_t depth = p->in_features, rows = p->out_features;
    if (p->weight_layout != NT_LAYOUT_FC_STACKED) {
        return NT_ERR_LAYOUT;
    }
    if (p->scratch == NULL || depth <= 0 || rows <= 0 || (depth & 1) ||
        ((uintptr_t)p->weights & 3u) != 0) {
        return NT_ERR_PARAM;
    }
    const int32_t n8 = depth >> 3, body8 = n8 << 3, tail = depth - body8;
    const int32_t quads = depth >> 2;
    uint32_t* x = (uint32_t*)p->scratch;
    const int normal = multipliers_normal(p->multiplier, p->per_channel ? rows : 1);
    int32_t acc[2 * kFcChunk] __attribute__((aligned(8)));
    for (int32_t b = 0; b < p->batches; b++) {
        const int8_t* row_in = in + (size_t)b * depth;
        int8_t* row_out = out + (size_t)b * rows;
        const int32_t xsum128 = widen_xsum128(row_in, n8, quads, x);
        const int32_t pairs = rows >> 1;
        for (int32_t j0 = 0; j0 < pairs; j0 += kFcChunk) {
            const int32_t n = pairs - j0 < kFcChunk ? pairs - j0 : kFcChunk;
            const int8_t* w = p->weights + (size_t)j0 * 2 * depth;
            /* n8 = 0 runs no block: acc = bias */
            nt_dsp_fc_pairs(x, w, (uint32_t)n8, (uint32_t)n, p->bias_folded + 2 * j0, acc,
                            (uint32_t)(2 * tail), xsum128);
            for (int32_t i = 0; i < 2 * n && tail > 0; i++) {
                const int8_t* wt = w + (size_t)(i >> 1) * 2 * depth + 2 * body8 + (i & 1) * tail;
                for (int32_t k = 0; k < tail; k++) {
                    acc[i] += (int32_t)row_in[body8 + k] * wt[k];
                }
            }
            fc_requant(p, acc, 2 * j0, 2 * n, row_out + 2 * j0, normal);
        }
        if (rows & 1) { /* the odd last row, stored plainly */
            const int32_t o = rows - 1;
            const int8_t* w = p->weights + (size_t)o * depth;
            acc[0] = dot1_row(w, x, quads, p->bias_folded[o]);
            for (int32_t k = quads << 2; k < depth; k++) {
                acc[0] += (int32_t)row_in[k] * w[k];
            }
            fc_requant(p, acc, o, 1, row_out + o, normal);
        }
    }
    return NT_OK;
}

/* NT_LAYOUT_TFLITE weights (what older generated code and odd in_features use). */
static int fc_tflite(const nt_fc_params* p, const int8_t* in, int8_t* out) {
    const int32_t depth = p->in_features;
    const int32_t quads = depth >> 2;
    const int32_t body = quads << 2;
    uint32_t* x = (uint32_t*)p->scratch;
    const int pc = p->per_channel != 0;

    for (int32_t b = 0; b < p->batches; b++) {
        const int8_t* row_in = in + (size_t)b * depth;
        int8_t* row_out = out + (size_t)b * p->out_features;
        widen_q4(row_in, body, x);
        int32_t o = 0;
        /* Rows start on word boundaries when the array does and depth % 4 == 0: the LDRD loop. */
        const int32_t n8 = depth >> 3;
        if (n8 > 0 && (depth & 3) == 0 && ((uintptr_t)p->weights & 3u) == 0) {
            for (; o + 2 <= p->out_features; o += 2) {
                const int8_t* w0 = p->weights + (size_t)o * depth;
                const int8_t* w1 = w0 + depth;
                int32_t acc[2] = {p->bias_folded[o], p->bias_folded[o + 1]};
                nt_dsp_dot2_k8(x, w0, w1, (uint32_t)n8, acc);
                if (depth & 4) { /* one quad left: depth % 4 == 0 here, so no single taps */
                    acc[0] = dot1_row(w0 + 8 * n8, x + 4 * n8, 1, acc[0]);
                    acc[1] = dot1_row(w1 + 8 * n8, x + 4 * n8, 1, acc[1]);
                }
                const int32_t c0 = pc ? o : 0;
                const int32_t c1 = pc ? o + 1 : 0;
                row_out[o] = finish(acc[0], p->multiplier[c0], p->shift[c0], p->out_zp, p->act_min,
                                    p->act_max);
                row_out[o + 1] = finish(acc[1], p->multiplier[c1], p->shift[c1], p->out_zp,
                                        p->act_min, p->act_max);
            }
        }
        for (; o < p->out_features; o++) {
            const int8_t* w = p->weights + (size_t)o * depth;
            int32_t acc = dot1_row(w, x, quads, p->bias_folded[o]);
            for (int32_t k = body; k < depth; k++) {
                acc += (int32_t)row_in[k] * w[k];
            }
            const int32_t c = pc ? o : 0;
            row_out[o] =
                finish(acc, p->multiplier[c], p->shift[c], p->out_zp, p->act_min, p->act_max);
        }
    }
    return NT_OK;
}

#else
/* Not a DSP target: the c99 kernels serve. ISO C wants a declaration in every file. */
typedef int nt_fully_connected_dsp_unused_t;
#endif /* __ARM_FEATURE_DSP */
