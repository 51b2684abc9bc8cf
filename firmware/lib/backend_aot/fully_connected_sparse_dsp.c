/* Cortex-M4 DSP block-sparse fully connected (kernels_sparse.h), bit-exact with
 * fully_connected_sparse_c99.c: the same integer sums in another order, the same requantization.
 *
 * The input row is widened once to int16 in SMLAD lane order ((x0,x2),(x1,x3) per 4 inputs), so
 * a block of 8 inputs is 4 words at x + 4 b. Per stored 2 x 8 block the loop loads its index
 * (LDRB), the 4 activation words (LDM) and each row's 8 weights (LDM, two words), and runs
 * 8 SXTB16 + 8 SMLAD: 23 instructions per 16 MACs, with no work at all for skipped blocks. The
 * loop is in assembly because GCC 12 does not fold the ROR into SXTB16 (see simd_dsp.h).
 * The tails and the requantization are in C.
 */
#include "kernels_sparse.h"

#if defined(__ARM_FEATURE_DSP)

#include <arm_acle.h>
#include <string.h>

#include "requant.h"

/* For each of `pairs` row pairs: acc[2j], acc[2j + 1] = bias[2j], bias[2j + 1] + the pair's
 * stored blocks (count[j] of them, indices from idx, weights from w) times x; after each pair,
 * w skips the pair's `skip` tail bytes. Returns nothing; w and idx advance over the pairs.
 * Stack arguments (after the 9 saved registers): [sp+36] pairs >= 1, [sp+40] bias, [sp+44]
 * acc, [sp+48] skip; the callee owns that area (AAPCS) and counts in it. */
__asm__(
    "  .syntax unified\n"
    "  .thumb\n"
    "  .section .text.nt_dsp_fcs_pairs,\"ax\",%progbits\n"
    "  .align 2\n"
    "  .global nt_dsp_fcs_pairs\n"
    "  .hidden nt_dsp_fcs_pairs\n"
    "  .type nt_dsp_fcs_pairs, %function\n"
    "  .thumb_func\n"
    "nt_dsp_fcs_pairs:\n"
    "  push {r4-r11, lr}\n"
    "1:\n"
    "  ldr r12, [sp, #40]\n"
    "  ldrd r10, r11, [r12], #8\n"
    "  str r12, [sp, #40]\n"
    "  ldrh lr, [r3], #2\n"
    "  cmp lr, #0\n"
    "  beq 3f\n"
    "2:\n"
    "  ldrb r12, [r2], #1\n"
    "  add r12, r0, r12, lsl #4\n"
    "  ldm r12, {r4-r7}\n"
    "  ldm r1!, {r8, r9}\n"
    "  sxtb16 r12, r8\n"
    "  smlad r10, r12, r4, r10\n"
    "  sxtb16 r8, r8, ror #8\n"
    "  smlad r10, r8, r5, r10\n"
    "  sxtb16 r12, r9\n"
    "  smlad r10, r12, r6, r10\n"
    "  sxtb16 r9, r9, ror #8\n"
    "  smlad r10, r9, r7, r10\n"
    "  ldm r1!, {r8, r9}\n"
    "  sxtb16 r12, r8\n"
    "  smlad r11, r12, r4, r11\n"
    "  sxtb16 r8, r8, ror #8\n"
    "  smlad r11, r8, r5, r11\n"
    "  sxtb16 r12, r9\n"
    "  smlad r11, r12, r6, r11\n"
    "  sxtb16 r9, r9, ror #8\n"
    "  smlad r11, r9, r7, r11\n"
    "  subs lr, lr, #1\n"
    "  bne 2b\n"
    "3:\n"
    "  ldr r12, [sp, #44]\n"
    "  strd r10, r11, [r12], #8\n"
    "  str r12, [sp, #44]\n"
    "  ldr r12, [sp, #48]\n"
    "  add r1, r1, r12\n"
    "  ldr r12, [sp, #36]\n"
    "  subs r12, r12, #1\n"
    "  str r12, [sp, #36]\n"
    "  bne 1b\n"
    "  pop {r4-r11, pc}\n"
    "  .size nt_dsp_fcs_pairs, .-nt_dsp_fcs_pairs\n"
    "  .text\n");

void nt_dsp_fcs_pairs(const uint32_t* x, const int8_t* w, const uint8_t* idx, const uint16_t* count,
                      uint32_t pairs, const int32_t* bias, int32_t* acc, uint32_t skip);

enum { kFcsChunk = 32 };

/* requantize + out_zp + clamp, bit-exact with nt_mul_q (TFLM's double rounding): requant_norm
 * (requant.h) for multipliers that are 0 or in [2^30, 2^31), which is what the generator
 * emits; anything else takes nt_mul_q. */
static inline int32_t fcs_finish(int32_t acc, int32_t m, int32_t shift, int32_t out_zp, int32_t lo,
                                 int32_t hi) {
    int32_t v = (m != 0 && m < (1 << 30)) ? nt_mul_q(acc, m, shift) : requant_norm(acc, m, shift);
    v += out_zp;
    v = v < lo ? lo : v;
    return v > hi ? hi : v;
}

int nt_fully_connected_sparse_dsp(const nt_fc_sparse_params* p, const int8_t* in, int8_t* out) {
    const int32_t depth = p->in_features, rows = p->out_features;
    if (p->scratch == NULL) {
        return nt_fully_connected_sparse_c99(p, in, out); /* planned without scratch */
    }
    if (depth <= 0 || rows <= 0 || (depth & 1) || (rows & 1) || depth / 8 > 256 ||
        ((uintptr_t)p->weights & 3u) != 0) {
        return NT_ERR_PARAM;
    }
    /* Every field in a local: the int8 output stores may alias *p, and GCC would reload it. */
    const int32_t body = depth & ~7, tail = depth - body, pairs = rows / 2;
    const int32_t out_zp = p->out_zp, lo = p->act_min, hi = p->act_max;
    const int32_t *const mult = p->multiplier, *const shift = p->shift;
    const int32_t* const bias = p->bias_folded;
    const uint16_t* const count = p->block_count;
    const int32_t cstep = p->per_channel ? 1 : 0;
    uint32_t* const x = (uint32_t*)p->scratch;
    int32_t acc[2 * kFcsChunk] __attribute__((aligned(8)));
    for (int32_t b = 0; b < p->batches; b++) {
        const int8_t* row_in = in + (size_t)b * depth;
        int8_t* row_out = out + (size_t)b * rows;
        for (int32_t k = 0; k < body; k += 4) { /* widen: (x0,x2), (x1,x3) per 4 inputs */
            uint32_t v;
            memcpy(&v, row_in + k, sizeof(v));
            uint32_t r;
            __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v));
            x[k / 2] = __sxtb16(v);
            x[k / 2 + 1] = r;
        }
        const int8_t* w = p->weights;
        const uint8_t* idx = p->block_index;
        for (int32_t j0 = 0; j0 < pairs; j0 += kFcsChunk) {
            const int32_t n = pairs - j0 < kFcsChunk ? pairs - j0 : kFcsChunk;
            nt_dsp_fcs_pairs(x, w, idx, count + j0, (uint32_t)n, bias + 2 * j0, acc,
                             (uint32_t)(2 * tail));
            /* Past this chunk's blocks (and tails) for the next one, adding the tails on the way.
             */
            for (int32_t i = 0; i < n; i++) {
                const uint32_t blocks = count[j0 + i];
                w += 16u * blocks;
                idx += blocks;
                if (tail) {
                    int32_t a0 = acc[2 * i], a1 = acc[2 * i + 1];
                    for (int32_t k = 0; k < tail; k++) {
                        a0 += (int32_t)row_in[body + k] * w[k];
                        a1 += (int32_t)row_in[body + k] * w[tail + k];
                    }
                    acc[2 * i] = a0;
                    acc[2 * i + 1] = a1;
                    w += 2 * tail;
                }
            }
            int8_t* o = row_out + 2 * j0;
            const int32_t *m = mult + cstep * 2 * j0, *s = shift + cstep * 2 * j0;
            for (int32_t i = 0; i < 2 * n; i++, m += cstep, s += cstep) {
                o[i] = (int8_t)fcs_finish(acc[i], *m, *s, out_zp, lo, hi);
            }
        }
    }
    return NT_OK;
}

#else
typedef int nt_kernels_sparse_dsp_unused_t; /* ISO C: a translation unit must not be empty */
#endif /* __ARM_FEATURE_DSP */
