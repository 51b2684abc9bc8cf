/* Cortex-M4 DSP (SIMD) variants of the hot kernels: fully connected, conv2d, depthwise conv2d
 * and max pool.
 *
 * Bit-exact with the c99 variants (kernels_c99.c) and TFLM: integer sums are exact whatever the
 * order, and requantization computes the same function (the algebra is in requant_nn and
 * requant_norm). Only the instruction count differs, which is what QEMU's -icount measures, so
 * the loops are shaped to execute few instructions per MAC:
 * - int8 pairs are split with SXTB16 (lanes 0 and 2) and SXTB16 ROR #8 (lanes 1 and 3), and two
 *   products are accumulated per SMLAD;
 * - activations are widened once into int16 scratch in that same (x0,x2),(x1,x3) lane order and
 *   shared across output rows: fully connected runs 2 rows x 8 inputs per step on weights the
 *   generator interleaved offline (NT_LAYOUT_FC_PAIRS8: one LDM of activations, one LDM of
 *   weights: 18 instructions per 16 MACs); conv runs 2 output pixels x 2 channels x 4 taps (one
 *   LDM, one LDR per row: 15 per 16 MACs) on an im2col block gathered straight from the image
 *   through a tap-offset table when the window is inside it;
 * - a 1-channel input with 5-tap rows (the cnn's first layer) skips im2col: two neighbouring
 *   pixels share each unpacked input (six SMLAD per ten MACs, nt_dsp_c1k5_pair);
 * - a fused max pool (nt_conv_params.pool_h/pool_w) takes the max of the raw accumulators over
 *   each window and requantizes once (requantization is monotone when no shift is positive);
 * - depthwise (depth multiplier 1) runs pixel pairs x 4 channels, each weight word unpacked once
 *   for both pixels, with tap pointer tables so border pixels need no bounds checks;
 * - the hottest loops (and the requantization of a pixel pair) are in assembly, because GCC 12
 *   does not fold the ROR into SXTB16 and spills the accumulators and row pointers;
 * - the input zero point is already folded into bias_folded by the generator (kernels.h), and
 *   padding taps are filled with in_zp, so the inner loops have no zero-point arithmetic.
 * Reads NT_LAYOUT_TFLITE (and NT_LAYOUT_FC_PAIRS8 for fully connected). The conv fast path
 * keeps two 256-byte patches, a 512-byte offset table and 1 KiB of accumulators on the stack
 * (about 2 KiB); larger kernels take the scratch-staged path.
 */
#include "kernels.h"

#if defined(__ARM_FEATURE_DSP)

#include <arm_acle.h>
#include <string.h>

#include "requant_dsp.h"

/* SXTB16 with the ROR #8 folded in (GCC 12 emits a separate ROR for the intrinsic form). */
static inline uint32_t sxtb16_ror8(uint32_t v) {
  uint32_t r;
  __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v));
  return r;
}

/* Unaligned 32-bit load: the Cortex-M4 does unaligned LDR in hardware and GCC emits one LDR. */
static inline uint32_t ld32(const void *p) {
  uint32_t v;
  memcpy(&v, p, sizeof(v));
  return v;
}

/* TFLM MultiplyByQuantizedMultiplier (default double rounding), in one 64-bit sum.
 * Multipliers from the generator are in [0, 2^31), so SaturatingRoundingDoublingHighMul's
 * saturating case (both INT32_MIN) cannot occur, and with TFLM's nudge (2^30 for a >= 0,
 * 1 - 2^30 for a < 0) and truncating division it equals H = floor(P / 2^31) with
 * P = a*b + 2^30. RoundingDivideByPOT(H, e) for e >= 1 rounds half away from zero:
 * floor((H + 2^(e-1) - [H < 0]) / 2^e), and since H < 0 exactly when P < 0 this is
 * floor((P + 2^(30+e) - [P < 0] 2^31) / 2^(31+e)): no intermediate rounding, no overflow, and
 * the shift by 31 + e >= 32 is the high word shifted by e - 1. (A negative multiplier, which
 * the generator never emits, takes kernels.h's general nt_mul_q.) */
static inline int32_t requant_nn(int32_t acc, int32_t multiplier, int32_t shift) {
#ifdef NT_SINGLE_ROUNDING
  return nt_mul_q(acc, multiplier, shift);
#else
  if (shift >= 0) {
    const int32_t x = (int32_t)((uint32_t)acc << shift);
    return (int32_t)(((int64_t)x * multiplier + ((int64_t)1 << 30)) >> 31);
  }
  /* e >= 1: P = acc * m + 2^30 (SMULL + add), then add n * 2^31 as a 64-bit value with
   * n = -[P < 0] (low word n << 31, high word n), then 2^(30+e) = t << 30 with t = 2^e (low
   * word t << 30, which is nonzero only for e = 1; high word t >> 2), and shift the high word
   * right by e - 1. GCC does not find this sequence from the C form. */
  const int32_t em1 = ~shift; /* e - 1 = -shift - 1 */
  const uint32_t t = 2u << em1; /* 2^e */
  uint32_t lo;
  int32_t hi;
  uint32_t n;
  __asm__("smull %[lo], %[hi], %[a], %[m]\n\t"
          "adds %[lo], %[lo], #0x40000000\n\t"
          "adc %[hi], %[hi], #0\n\t"
          "asr %[n], %[hi], #31\n\t"
          "adds %[lo], %[lo], %[n], lsl #31\n\t"
          "adc %[hi], %[hi], %[n]\n\t"
          "adds %[lo], %[lo], %[t], lsl #30\n\t"
          "adc %[hi], %[hi], %[t], lsr #2\n\t"
          : [lo] "=&r"(lo), [hi] "=&r"(hi), [n] "=&r"(n)
          : [a] "r"(acc), [m] "r"(multiplier), [t] "r"(t)
          : "cc");
  (void)lo;
  return hi >> em1;
#endif
}

static inline int multipliers_normal(const int32_t *v, int32_t n) {
  for (int32_t i = 0; i < n; i++) {
    if (v[i] != 0 && v[i] < (1 << 30)) {
      return 0;
    }
  }
  return 1;
}

static inline int32_t requant(int32_t acc, int32_t multiplier, int32_t shift) {
  return multiplier < 0 ? nt_mul_q(acc, multiplier, shift) : requant_nn(acc, multiplier, shift);
}

/* requant_nn + zero point + activation clamp. full_range (act_min = -128, act_max = 127, the
 * usual case) clamps with one SSAT. */
static inline int32_t finish_norm(int32_t acc, int32_t multiplier, int32_t shift,
                                  int32_t out_zp, int full_range, int32_t act_min,
                                  int32_t act_max) {
  /* Returns int32 in [-128, 127]: the byte store truncates, no sign extension needed. */
  int32_t v = requant_norm(acc, multiplier, shift) + out_zp;
  if (full_range) {
    return __ssat(v, 8);
  }
  v = v < act_min ? act_min : v;
  v = v > act_max ? act_max : v;
  return v;
}

static inline int8_t finish(int32_t acc, int32_t multiplier, int32_t shift, int32_t out_zp,
                            int32_t act_min, int32_t act_max) {
  int32_t v = requant(acc, multiplier, shift) + out_zp;
  v = v < act_min ? act_min : v;
  v = v > act_max ? act_max : v;
  return (int8_t)v;
}

/* Small copies (im2col rows are often a few bytes): newlib-nano's memcpy goes byte by byte
 * behind a call, this moves words with unaligned LDR/STR. */
static inline void copy_small(int8_t *dst, const int8_t *src, int32_t n) {
  for (; n >= 4; n -= 4) {
    const uint32_t v = ld32(src);
    memcpy(dst, &v, sizeof(v));
    dst += 4;
    src += 4;
  }
  for (; n > 0; n--) {
    *dst++ = *src++;
  }
}

/* Widen n int8 values (n a multiple of 4) to int16 in SMLAD lane order: each group of 4
 * (x0,x1,x2,x3) becomes the words (x0|x2<<16), (x1|x3<<16). */
static void widen_q4(const int8_t *in, int32_t n, uint32_t *dst) {
  for (int32_t k = 0; k < n; k += 4) {
    const uint32_t v = ld32(in + k);
    dst[0] = __sxtb16(v);
    dst[1] = sxtb16_ror8(v);
    dst += 2;
  }
}

static inline int32_t dot1_row(const int8_t *w, const uint32_t *x, int32_t quads, int32_t acc) {
  for (int32_t q = 0; q < quads; q++) {
    const uint32_t v = ld32(w);
    w += 4;
    acc = __smlad(__sxtb16(v), x[0], acc);
    acc = __smlad(sxtb16_ror8(v), x[1], acc);
    x += 2;
  }
  return acc;
}


/* ---- hand-scheduled inner loops ------------------------------------------------------------
 * Under -icount the cost is the instruction count, and GCC 12 neither folds the ROR into SXTB16
 * nor keeps four row pointers, four accumulators and the activations in registers (it spills),
 * so the two hottest loops are written in assembly. Both follow the AAPCS (r4-r11 saved).
 *
 * nt_dsp_dot2_k8(x, w0, w1, n8, acc): acc[r] += sum_{k < 8 n8} x[k] * wr[k] for rows w0, w1.
 *   x: widened activations, 4 words per 8 inputs (widen_q4 order), word aligned;
 *   w0, w1: int8 rows, word aligned (LDRD); n8 >= 1. 19 instructions per 16 MACs, loop
 *   unrolled twice.
 * nt_dsp_dot2x2_k4(cols, w0, w1, n4, acc): two columns a, b interleaved per quad as words
 *   (a02, a13, b02, b13); acc = {row0.a, row0.b, row1.a, row1.b}; rows w0, w1 any alignment
 *   (LDR); n4 >= 1. 15 instructions per 16 MACs, loop unrolled twice. */
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
    "  .section .text.nt_dsp_dot2x2_k4,\"ax\",%progbits\n"
    "  .align 2\n"
    "  .global nt_dsp_dot2x2_k4\n"
    "  .hidden nt_dsp_dot2x2_k4\n"
    "  .type nt_dsp_dot2x2_k4, %function\n"
    "  .thumb_func\n"
    "nt_dsp_dot2x2_k4:\n"
    "  push {r4-r11, lr}\n"
    "  ldr lr, [sp, #36]\n"
    "  push {lr}\n"
    "  ldm lr, {r10, r11, r12, lr}\n"
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
    "  pop {r9}\n"
    "  stm r9, {r10, r11, r12, lr}\n"
    "  pop {r4-r11, pc}\n"
    "  .size nt_dsp_dot2x2_k4, .-nt_dsp_dot2x2_k4\n"
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
    "\n"
    "  .section .text.nt_dsp_requant_cols_ssat,\"ax\",%progbits\n"
    "  .align 2\n"
    "  .global nt_dsp_requant_cols_ssat\n"
    "  .hidden nt_dsp_requant_cols_ssat\n"
    "  .type nt_dsp_requant_cols_ssat, %function\n"
    "  .thumb_func\n"
    "nt_dsp_requant_cols_ssat:\n"
    "  push {r4-r11, lr}\n"
    "  ldr r4, [sp, #36]\n"
    "  ldr r5, [sp, #40]\n"
    "  ldr r6, [sp, #44]\n"
    "1:\n"
    "  ldr r7, [r1], #4\n"
    "  ldr r8, [r2], #4\n"
    "  cmp r8, #0\n"
    "  bge 6f\n"
    "  mvn r8, r8\n"
    "  mov r11, #2\n"
    "  lsl r11, r11, r8\n"
    "  lsl r12, r11, #30\n"
    "  add r12, r12, #0x40000000\n"
    "  lsr r11, r11, #2\n"
    "  ldr r9, [r0, #4]\n"
    "  mov lr, r12\n"
    "  mov r10, r11\n"
    "  smlal lr, r10, r9, r7\n"
    "  asr r9, r9, #31\n"
    "  adds lr, lr, r9, lsl #31\n"
    "  adc r10, r10, r9\n"
    "  asr r10, r10, r8\n"
    "  add r10, r10, r3\n"
    "  ssat r10, #8, r10\n"
    "  strb r10, [r5, r6]\n"
    "  ldr r9, [r0], #8\n"
    "  smlal r12, r11, r9, r7\n"
    "  asr r9, r9, #31\n"
    "  adds r12, r12, r9, lsl #31\n"
    "  adc r11, r11, r9\n"
    "  asr r11, r11, r8\n"
    "  add r11, r11, r3\n"
    "  ssat r11, #8, r11\n"
    "  strb r11, [r5], #1\n"
    "  subs r4, r4, #1\n"
    "  bne 1b\n"
    "  pop {r4-r11, pc}\n"
    "6:\n"
    "  ldr r9, [r0, #4]\n"
    "  lsl r9, r9, r8\n"
    "  mov lr, #0x40000000\n"
    "  mov r10, #0\n"
    "  smlal lr, r10, r9, r7\n"
    "  lsr lr, lr, #31\n"
    "  orr r10, lr, r10, lsl #1\n"
    "  add r10, r10, r3\n"
    "  ssat r10, #8, r10\n"
    "  strb r10, [r5, r6]\n"
    "  ldr r9, [r0], #8\n"
    "  lsl r9, r9, r8\n"
    "  mov lr, #0x40000000\n"
    "  mov r10, #0\n"
    "  smlal lr, r10, r9, r7\n"
    "  lsr lr, lr, #31\n"
    "  orr r10, lr, r10, lsl #1\n"
    "  add r10, r10, r3\n"
    "  ssat r10, #8, r10\n"
    "  strb r10, [r5], #1\n"
    "  subs r4, r4, #1\n"
    "  bne 1b\n"
    "  pop {r4-r11, pc}\n"
    "  .size nt_dsp_requant_cols_ssat, .-nt_dsp_requant_cols_ssat\n"
    "\n"
    "  .section .text.nt_dsp_c1k5_pair,\"ax\",%progbits\n"
    "  .align 2\n"
    "  .global nt_dsp_c1k5_pair\n"
    "  .hidden nt_dsp_c1k5_pair\n"
    "  .type nt_dsp_c1k5_pair, %function\n"
    "  .thumb_func\n"
    "nt_dsp_c1k5_pair:\n"
    "  push {r4-r11, lr}\n"
    "  sub sp, #16\n"
    /* locals: [sp] row pointer, [sp+4] in_w | -k_h << 16, [sp+8] channel pairs left;
     * args after the 9 saved registers: [sp+52] bias, [sp+56] acc */
    "  str r0, [sp]\n"
    "  str r1, [sp, #4]\n"
    "  str r3, [sp, #8]\n"
    "3:\n"
    "  ldr r3, [sp, #52]\n"
    "  ldrd r10, r12, [r3], #8\n"
    "  str r3, [sp, #52]\n"
    "  mov r11, r10\n"
    "  mov lr, r12\n"
    "  ldr r0, [sp]\n"
    "  ldr r1, [sp, #4]\n"
    "1:\n"
    "  ldr r4, [r0]\n"
    "  ldr r6, [r0, #2]\n"
    "  sxtb16 r3, r4\n"
    "  sxtb16 r4, r4, ror #8\n"
    "  sxtb16 r5, r6\n"
    "  sxtb16 r6, r6, ror #8\n"
    "  ldmia r2!, {r7, r8, r9}\n"
    "  smlad r10, r3, r7, r10\n"
    "  smlad r11, r4, r7, r11\n"
    "  smlad r10, r4, r8, r10\n"
    "  smlad r11, r5, r8, r11\n"
    "  smlad r10, r5, r9, r10\n"
    "  smlad r11, r6, r9, r11\n"
    "  ldmia r2!, {r7, r8, r9}\n"
    "  smlad r12, r3, r7, r12\n"
    "  smlad lr, r4, r7, lr\n"
    "  smlad r12, r4, r8, r12\n"
    "  smlad lr, r5, r8, lr\n"
    "  smlad r12, r5, r9, r12\n"
    "  smlad lr, r6, r9, lr\n"
    "  uxtah r0, r0, r1\n"
    "  adds r1, r1, #0x10000\n"
    "  bcc 1b\n"
    "  ldr r3, [sp, #56]\n"
    "  stmia r3!, {r10, r11, r12, lr}\n"
    "  str r3, [sp, #56]\n"
    "  ldr r3, [sp, #8]\n"
    "  subs r3, r3, #1\n"
    "  str r3, [sp, #8]\n"
    "  bne 3b\n"
    "  add sp, #16\n"
    "  pop {r4-r11, pc}\n"
    "  .size nt_dsp_c1k5_pair, .-nt_dsp_c1k5_pair\n"
    "\n"
    "  .macro NT_FC_BLOCK\n"
    "  ldmia r0!, {r4-r7}\n"
    "  ldmia r1!, {r8-r11}\n"
    "  sxtb16 r12, r8\n"
    "  smlad r2, r12, r4, r2\n"
    "  sxtb16 r8, r8, ror #8\n"
    "  smlad r2, r8, r5, r2\n"
    "  sxtb16 r12, r9\n"
    "  smlad r2, r12, r6, r2\n"
    "  sxtb16 r9, r9, ror #8\n"
    "  smlad r2, r9, r7, r2\n"
    "  sxtb16 r12, r10\n"
    "  smlad r3, r12, r4, r3\n"
    "  sxtb16 r10, r10, ror #8\n"
    "  smlad r3, r10, r5, r3\n"
    "  sxtb16 r12, r11\n"
    "  smlad r3, r12, r6, r3\n"
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
     * args after the 9 saved registers: [sp+52] bias, [sp+56] acc, [sp+60] skip */
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

void nt_dsp_dot2_k8(const uint32_t *x, const int8_t *w0, const int8_t *w1, uint32_t n8,
                    int32_t acc[2]);
void nt_dsp_dot2x2_k4(const uint32_t *cols, const int8_t *w0, const int8_t *w1, uint32_t n4,
                      int32_t acc[4]);
/* For each of `pairs` row pairs (rows 2i, 2i+1 of w, `depth` bytes apart), starting from
 * acc = bias[2i], bias[2i], bias[2i+1], bias[2i+1], accumulates n4 quads of the interleaved
 * two-column block and appends {row0.a, row0.b, row1.a, row1.b} to buf: buf[2o] is output
 * channel o of column a, buf[2o + 1] of column b. pairs >= 1, n4 >= 1. */
/* requant_norm + out_zp + SSAT #8 for n >= 1 channels of a pixel pair: acc[2o] (column a) to
 * oa[o], acc[2o + 1] (column b) to oa[b_off + o]; mult/shift per channel, multipliers 0 or in
 * [2^30, 2^31) (the caller checks). The same arithmetic as requant_norm, in registers. */
void nt_dsp_requant_cols_ssat(const int32_t *acc, const int32_t *mult, const int32_t *shift,
                              int32_t out_zp, int32_t n, int8_t *oa, int32_t b_off);
/* 1-channel input, 5-tap rows (see conv_c1k5_ok): for output pixels a (window at r) and
 * b = a + 1 column, every channel pair of the widened weight table wt ([pair][k_h][A0 B0 C0 A1 B1
 * C1]), appends {a, b of channel 2i, a, b of 2i + 1} to acc, starting from the biases.
 * inw_count = in_w | (-k_h << 16): the row step in the low half, the row count in the high
 * half (counted up to the carry out, so one register serves both). pairs >= 1, k_h >= 1. */
void nt_dsp_c1k5_pair(const int8_t *r, uint32_t inw_count, const uint32_t *wt, uint32_t pairs,
                      const int32_t *bias, int32_t *acc);
/* Fully connected, NT_LAYOUT_FC_PAIRS8: for each of `pairs` row pairs (starting at w, each
 * 16 * n8 + skip bytes long), acc[2i], acc[2i + 1] = bias[2i], bias[2i + 1] + the first 8 n8
 * inputs (x widened by widen_q4) times the two rows. One LDM of activations and one of weights
 * per 8 inputs of both rows: 18 instructions per 16 MACs, loop unrolled four times. w word
 * aligned (LDM), n8 >= 1, pairs >= 1. */
void nt_dsp_fc_pairs(const uint32_t *x, const int8_t *w, uint32_t n8, uint32_t pairs,
                     const int32_t *bias, int32_t *acc, uint32_t skip);
void nt_dsp_conv_pairs(const uint32_t *cols, const int8_t *w, int32_t depth, uint32_t pairs,
                       uint32_t n4, const int32_t *bias, int32_t *buf);

/* ---- fully connected ----------------------------------------------------------------------- */

static int fc_tflite(const nt_fc_params *p, const int8_t *in, int8_t *out);
/* kernels.h declares the dsp entry points only when the dsp variant is selected; this file
 * is compiled for NANO_TFLM_FORCE_C99 images too. */
int nt_fully_connected_fast_dsp(const nt_fc_params *p, const int8_t *in, int8_t *out);

int nt_fully_connected_dsp(const nt_fc_params *p, const int8_t *in, int8_t *out) {
  if (p->scratch == NULL) {
    return nt_fully_connected_c99(p, in, out); /* planned without scratch to fit a budget */
  }
  if (p->in_features <= 0 || p->out_features <= 0) {
    return NT_ERR_PARAM;
  }
  if (p->weight_layout == NT_LAYOUT_FC_PAIRS8) {
    return nt_fully_connected_fast_dsp(p, in, out);
  }
  if (p->weight_layout != NT_LAYOUT_TFLITE) {
    return NT_ERR_LAYOUT;
  }
  return fc_tflite(p, in, out);
}

/* NT_LAYOUT_FC_PAIRS8 with its scratch (the generator calls this one directly): the input row
 * is widened once, nt_dsp_fc_pairs runs every row pair's first 8 n8 inputs in one call per
 * chunk of kFcChunk pairs, then the in_features % 8 remaining inputs, an odd last row and the
 * requantization follow in C. */
enum { kFcChunk = 32 };

int nt_fully_connected_fast_dsp(const nt_fc_params *p, const int8_t *in, int8_t *out) {
  const int32_t depth = p->in_features, rows = p->out_features;
  if (p->weight_layout != NT_LAYOUT_FC_PAIRS8) {
    return NT_ERR_LAYOUT;
  }
  if (p->scratch == NULL || depth <= 0 || rows <= 0 || (depth & 1) ||
      ((uintptr_t)p->weights & 3u) != 0) {
    return NT_ERR_PARAM;
  }
  const int32_t n8 = depth >> 3, body8 = n8 << 3, tail = depth - body8;
  const int32_t quads = depth >> 2;
  uint32_t *x = (uint32_t *)p->scratch;
  const int pc = p->per_channel != 0;
  const int normal = multipliers_normal(p->multiplier, pc ? rows : 1);
  const int full = p->act_min == -128 && p->act_max == 127;
  int32_t acc[2 * kFcChunk] __attribute__((aligned(8)));
  for (int32_t b = 0; b < p->batches; b++) {
    const int8_t *row_in = in + (size_t)b * depth;
    int8_t *row_out = out + (size_t)b * rows;
    widen_q4(row_in, quads << 2, x);
    const int32_t pairs = rows >> 1;
    for (int32_t j0 = 0; j0 < pairs; j0 += kFcChunk) {
      const int32_t n = pairs - j0 < kFcChunk ? pairs - j0 : kFcChunk;
      const int8_t *w = p->weights + (size_t)j0 * 2 * depth;
      if (n8 > 0) {
        nt_dsp_fc_pairs(x, w, (uint32_t)n8, (uint32_t)n, p->bias_folded + 2 * j0, acc,
                        (uint32_t)(2 * tail));
      } else {
        for (int32_t i = 0; i < 2 * n; i++) {
          acc[i] = p->bias_folded[2 * j0 + i];
        }
      }
      for (int32_t i = 0; i < 2 * n; i++) {
        const int32_t o = 2 * j0 + i;
        int32_t a = acc[i];
        const int8_t *wt = w + (size_t)(i >> 1) * 2 * depth + 2 * body8 + (i & 1) * tail;
        for (int32_t k = 0; k < tail; k++) {
          a += (int32_t)row_in[body8 + k] * wt[k];
        }
        const int32_t c = pc ? o : 0;
        row_out[o] = normal ? (int8_t)finish_norm(a, p->multiplier[c], p->shift[c], p->out_zp,
                                                  full, p->act_min, p->act_max)
                            : finish(a, p->multiplier[c], p->shift[c], p->out_zp, p->act_min,
                                     p->act_max);
      }
    }
    if (rows & 1) { /* the odd last row, stored plainly */
      const int32_t o = rows - 1;
      const int8_t *w = p->weights + (size_t)o * depth;
      int32_t a = dot1_row(w, x, quads, p->bias_folded[o]);
      for (int32_t k = quads << 2; k < depth; k++) {
        a += (int32_t)row_in[k] * w[k];
      }
      const int32_t c = pc ? o : 0;
      row_out[o] = finish(a, p->multiplier[c], p->shift[c], p->out_zp, p->act_min, p->act_max);
    }
  }
  return NT_OK;
}

/* NT_LAYOUT_TFLITE weights (what older generated code and odd in_features use). */
static int fc_tflite(const nt_fc_params *p, const int8_t *in, int8_t *out) {
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
    /* Rows start on word boundaries when the array does and depth % 4 == 0: the LDRD loop. */
    const int32_t n8 = depth >> 3;
    if (n8 > 0 && (depth & 3) == 0 && ((uintptr_t)p->weights & 3u) == 0) {
      for (; o + 2 <= p->out_features; o += 2) {
        const int8_t *w0 = p->weights + (size_t)o * depth;
        const int8_t *w1 = w0 + depth;
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
  if (contiguous && y0 >= 0 && y0 + (p->k_h - 1) * p->dil_h < p->in_h) {
    /* The whole window is inside the image (every pixel of a VALID conv): rows only. */
    const int8_t *src = in + ((size_t)y0 * p->in_w + x0) * in_c;
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

/* Widen two int8 patches into one interleaved column block: per quad q the words
 * (a02, a13, b02, b13) that nt_dsp_dot2x2_k4 loads with one LDM. */
static void widen2_q4(const int8_t *a, const int8_t *b, int32_t n, uint32_t *dst) {
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
static inline int32_t dot1_cols(const int8_t *w, const uint32_t *col, int32_t quads,
                                int32_t acc) {
  for (int32_t q = 0; q < quads; q++) {
    const uint32_t v = ld32(w);
    w += 4;
    acc = __smlad(__sxtb16(v), col[0], acc);
    acc = __smlad(sxtb16_ror8(v), col[1], acc);
    col += 4;
  }
  return acc;
}

/* Patches up to this many taps are gathered on the stack (two of them) and widened into an
 * interleaved block in the scratch (4 * depth bytes, of which 4 * body are used); larger ones
 * take the path below that stages them in the scratch itself. */
enum { kStackPatchMax = 256, kStackOutMax = 128 };

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
static inline void gather2_q4(const int8_t *ba, const int8_t *bb, const uint16_t *off,
                              int32_t quads, uint32_t *dst) {
  const uint32_t *o = (const uint32_t *)off;
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

static inline int window_inside(const nt_conv_params *p, int32_t oy, int32_t ox) {
  const int32_t y0 = oy * p->stride_h - p->pad_top;
  const int32_t x0 = ox * p->stride_w - p->pad_left;
  return y0 >= 0 && x0 >= 0 && y0 + (p->k_h - 1) * p->dil_h < p->in_h &&
         x0 + (p->k_w - 1) * p->dil_w < p->in_w;
}

/* Clamp n int8 values in place to [lo, hi] (each as four bytes): four at a time with
 * SSUB8/SEL, a bytewise signed max then min in four instructions. */
static __attribute__((noinline)) void clamp_bytes(int8_t *v, int32_t n, uint32_t lo4,
                                                  uint32_t hi4) {
  for (; n >= 4; n -= 4, v += 4) {
    uint32_t w = ld32(v);
    (void)__ssub8(w, lo4);
    w = __sel(w, lo4);
    (void)__ssub8(w, hi4);
    w = __sel(hi4, w);
    memcpy(v, &w, sizeof(w));
  }
  const int32_t lo = (int8_t)lo4, hi = (int8_t)hi4;
  for (; n > 0; n--, v++) {
    *v = (int8_t)nt_clamp(*v, lo, hi);
  }
}

/* Requantize the raw accumulators of a pixel pair (acc[2o] column a, acc[2o + 1] column b;
 * per-channel constants): column a to oa[o], column b to oa[b_off + o], with a general
 * activation clamp: the SSAT routine, then the (narrower) clamp on the stored bytes, which is
 * the same as clamping once because [act_min, act_max] lies inside [-128, 127]. */
static __attribute__((noinline)) void requant_cols_clamp(const int32_t *acc,
                                                         const int32_t *mult,
                                                         const int32_t *shift, int32_t out_zp,
                                                         int32_t act_min, int32_t act_max,
                                                         int32_t n, int8_t *oa, int32_t b_off) {
  nt_dsp_requant_cols_ssat(acc, mult, shift, out_zp, n, oa, b_off);
  const uint32_t lo4 = (uint32_t)(uint8_t)(int8_t)act_min * 0x01010101u;
  const uint32_t hi4 = (uint32_t)(uint8_t)(int8_t)act_max * 0x01010101u;
  clamp_bytes(oa, n, lo4, hi4);
  if (b_off != 0) {
    clamp_bytes(oa + b_off, n, lo4, hi4);
  }
}

/* Adds the up to 3 taps past the last whole quad: activations ta (column a), tb (column b),
 * weights at w + o * depth. */
static __attribute__((noinline)) void add_tail_taps(int32_t *acc, const int8_t *w, int32_t depth,
                                                    int32_t tail, const int8_t *ta,
                                                    const int8_t *tb, int32_t n) {
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
  const nt_conv_params *p;
  const int8_t *img;
  int32_t depth, quads, body, tail, out_c;
  const int8_t *weights;
  const int32_t *bias;
  uint32_t *cols;
  const uint16_t *off;
  int8_t *pa, *pb;
  const uint32_t *c1wt; /* 1-channel 5-tap path: widened weights, or NULL */
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
static int conv_c1k5_ok(const nt_conv_params *p) {
  return p->in_c == 1 && p->k_w == 5 && p->stride_w == 1 && p->dil_w == 1 && p->dil_h == 1 &&
         (p->out_c & 1) == 0 && p->k_h < 32768 && p->in_w < 65536;
}

/* Raw accumulators of output pixels a = (oya, oxa) and b = (oyb, oxb) for every channel, into
 * acc (channel-major: acc[2o] pixel a, acc[2o + 1] pixel b). b may equal a. */
static inline void conv_pair_acc(const conv_ctx *c, int32_t oya, int32_t oxa, int32_t oyb,
                                 int32_t oxb, int32_t *acc) {
  const nt_conv_params *p = c->p;
  const int8_t *pbp;
  if (c->c1wt != NULL && oyb == oya && oxb == oxa + 1 && window_inside(p, oya, oxa) &&
      window_inside(p, oyb, oxb)) {
    const int8_t *r = c->img + (size_t)(oya * p->stride_h - p->pad_top) * p->in_w +
                      (oxa - p->pad_left);
    nt_dsp_c1k5_pair(r, c->c1inw, c->c1wt, (uint32_t)(c->out_c >> 1), c->bias, acc);
    return;
  }
  if (window_inside(p, oya, oxa) && window_inside(p, oyb, oxb)) {
    const int8_t *ba =
        c->img + ((size_t)(oya * p->stride_h - p->pad_top) * p->in_w +
                  (oxa * p->stride_w - p->pad_left)) * p->in_c;
    const int8_t *bb =
        c->img + ((size_t)(oyb * p->stride_h - p->pad_top) * p->in_w +
                  (oxb * p->stride_w - p->pad_left)) * p->in_c;
    gather2_q4(ba, bb, c->off, c->quads, c->cols);
    for (int32_t k = c->body; k < c->depth; k++) { /* the up to 3 taps past the last quad */
      c->pa[k] = ba[c->off[k]];
      c->pb[k] = bb[c->off[k]];
    }
    pbp = c->pb;
  } else {
    im2col_patch(p, c->img, oya, oxa, c->pa);
    im2col_patch(p, c->img, oyb, oxb, c->pb);
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
    const int8_t *w = c->weights + (size_t)o * c->depth;
    acc[2 * o] = dot1_cols(w, c->cols, c->quads, c->bias[o]);
    acc[2 * o + 1] = dot1_cols(w, c->cols + 2, c->quads, c->bias[o]);
  }
  if (c->tail > 0) {
    add_tail_taps(acc, c->weights + c->body, c->depth, c->tail, c->pa + c->body,
                  pbp + c->body, c->out_c);
  }
}

/* mx[2o + col] = max(acc[2o], acc[2o + 1]) (first) or max with it too (later window pairs). */
static __attribute__((noinline)) void max_cols(const int32_t *acc, int32_t *mx, int32_t n,
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

static int conv2d_interleaved(const nt_conv_params *p, const int8_t *in, int8_t *out) {
  conv_ctx c;
  c.p = p;
  c.depth = p->k_h * p->k_w * p->in_c;
  c.quads = c.depth >> 2;
  c.body = c.quads << 2;
  c.tail = c.depth - c.body;
  c.out_c = p->out_c;
  c.weights = p->weights;
  c.bias = p->bias_folded;
  c.cols = (uint32_t *)p->scratch;
  const int32_t out_c = c.out_c;
  const int32_t out_w = p->out_w;
  const int32_t pixels = p->out_h * out_w;
  const int32_t out_zp = p->out_zp;
  const int32_t act_min = p->act_min;
  const int32_t act_max = p->act_max;
  const int full = act_min == -128 && act_max == 127;
  const int32_t *const mult = p->multiplier;
  const int32_t *const shift = p->shift;
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
    uint32_t *wt = (uint32_t *)((uint8_t *)p->scratch + 4 * (size_t)c.depth +
                                (p->pool_h > 0 ? 8 * (size_t)out_c : 0));
    for (int32_t o = 0; o < out_c; o++) {
      for (int32_t ky = 0; ky < p->k_h; ky++) {
        const int8_t *w = p->weights + ((size_t)o * p->k_h + ky) * 5;
        uint32_t *d = wt + ((size_t)(o >> 1) * p->k_h + ky) * 6 + (o & 1) * 3;
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
          off[k++] = (uint16_t)(((ky * p->dil_h * p->in_w) + kx * p->dil_w) * p->in_c + ch);
        }
      }
    }
  }
  const int32_t ph = p->pool_h, pw = p->pool_w;
  for (int32_t b = 0; b < p->batches; b++) {
    c.img = in + (size_t)b * p->in_h * p->in_w * p->in_c;
    if (ph > 0) {
      /* Fused max pool: the caller checked every shift <= 0, where requantization is monotone,
       * so the max of the requantized window is the requantized max accumulator. Pooled pixels
       * go in pairs (A, B) through mx (channel-major like acc), one requantization per pair. */
      int32_t *mx = (int32_t *)((uint8_t *)p->scratch + 4 * (size_t)c.depth);
      const int32_t qw = out_w / pw;
      const int32_t qpix = (p->out_h / ph) * qw;
      const int32_t win = ph * pw;
      int8_t *dst = out + (size_t)b * qpix * out_c;
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
        int8_t *oa = dst + (size_t)q * out_c;
        int8_t *ob = two ? oa + out_c : oa; /* lone pixel: b results land on a's, then a's */
        if (!two) {
          for (int32_t o = 0; o < out_c; o++) {
            mx[2 * o + 1] = mx[2 * o];
          }
        }
        if (full) {
          nt_dsp_requant_cols_ssat(mx, mult, shift, out_zp, out_c, oa, (int32_t)(ob - oa));
        } else {
          requant_cols_clamp(mx, mult, shift, out_zp, act_min, act_max, out_c, oa,
                             (int32_t)(ob - oa));
        }
      }
      continue;
    }
    int8_t *dst = out + (size_t)b * pixels * out_c;
    for (int32_t pix = 0; pix < pixels; pix += 2) {
      const int two = pix + 1 < pixels;
      const int32_t oya = pix / out_w, oxa = pix % out_w;
      const int32_t oyb = two ? (pix + 1) / out_w : oya, oxb = two ? (pix + 1) % out_w : oxa;
      /* A lone last pixel is paired with itself; its b results are not stored. */
      conv_pair_acc(&c, oya, oxa, oyb, oxb, acc);
      int8_t *oa = dst + (size_t)pix * out_c;
      int8_t *ob = two ? oa + out_c : oa; /* lone pixel: b results land on a's, then a's */
      if (full) {
        nt_dsp_requant_cols_ssat(acc, mult, shift, out_zp, out_c, oa, (int32_t)(ob - oa));
      } else {
        requant_cols_clamp(acc, mult, shift, out_zp, act_min, act_max, out_c, oa,
                           (int32_t)(ob - oa));
      }
    }
  }
  return NT_OK;
}

static int conv2d_staged(const nt_conv_params *p, const int8_t *in, int8_t *out);

/* The interleaved path's preconditions (kernels.h, nt_conv2d_fast): scratch present, 4..256
 * taps, tap offsets below 2^16, at most kStackOutMax channels, per-channel multipliers 0 or in
 * [2^30, 2^31); with a fused pool also every shift <= 0 (monotone requantization). */
int nt_conv2d_fast_ok_dsp(const nt_conv_params *p) {
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
int nt_conv2d_fast_dsp(const nt_conv_params *p, const int8_t *in, int8_t *out) {
  const int32_t taps = p->k_h * p->k_w * p->in_c;
  if (p->scratch == NULL || taps < 4 || taps > kStackPatchMax || p->out_c > kStackOutMax) {
    return NT_ERR_PARAM;
  }
  return conv2d_interleaved(p, in, out);
}

int nt_conv2d_dsp(const nt_conv_params *p, const int8_t *in, int8_t *out) {
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
  return conv2d_staged(p, in, out);
}

/* Kernels too large for the interleaved path (more than kStackPatchMax taps or kStackOutMax
 * channels) or with per-tensor / unusual multipliers: rare in small models, so compiled for
 * size (it would otherwise be the largest function in the image). */
static __attribute__((noinline, optimize("Os"))) int conv2d_staged(const nt_conv_params *p,
                                                                   const int8_t *in,
                                                                   int8_t *out) {
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


/* Depth multiplier 1, channels a multiple of 4 (at most kStackOutMax), per-channel multipliers
 * 0 or in [2^30, 2^31), at most kDwTapsMax taps. Output pixels in pairs; each has a table of tap
 * pointers (padding taps point at a row of in_zp bytes), so border pixels take the same loop
 * without bounds checks. One tap of four channels for the pair: one LDR of weights, two of
 * activations, six SXTB16, eight SMLABB/SMLATT. */
enum { kDwTapsMax = 64 };

/* Four channels of a pixel pair: tap t of pixel a reads ta[t] + c, of pixel b tb[t] + c (the
 * tables point padding taps at a row of in_zp bytes, the folded-bias contract); each weight
 * word is loaded and unpacked once for both pixels. Results go to q in acc order. */
static inline void dw_q4_pair(const int8_t *const *ta, const int8_t *const *tb, int32_t c,
                              const int8_t *wk, int32_t taps, int32_t ch, const int32_t *bias,
                              int32_t *q) {
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
static void dw_taps(const nt_conv_params *p, const int8_t *img, const int8_t *zp_row,
                    int32_t oy, int32_t ox, const int8_t **t) {
  const int32_t ch = p->out_c;
  const int32_t y0 = oy * p->stride_h - p->pad_top, x0 = ox * p->stride_w - p->pad_left;
  for (int32_t ky = 0; ky < p->k_h; ky++) {
    const int32_t y = y0 + ky * p->dil_h;
    const int row_ok = y >= 0 && y < p->in_h;
    const int8_t *row = img + (size_t)y * p->in_w * ch;
    for (int32_t kx = 0; kx < p->k_w; kx++) {
      const int32_t xx = x0 + kx * p->dil_w;
      *t++ = row_ok && xx >= 0 && xx < p->in_w ? row + (size_t)xx * ch : zp_row;
    }
  }
}

/* Output pixels go in pairs (a, b) through acc (channel-major, acc[2o] a, acc[2o + 1] b) so that
 * the conv's requantization routines serve (one constant setup per channel and pair). */
static int depthwise_dm1_q4(const nt_conv_params *p, const int8_t *in, int8_t *out) {
  const int32_t ch = p->out_c, taps = p->k_h * p->k_w;
  const int32_t out_w = p->out_w;
  const int32_t pixels = p->out_h * out_w;
  const int32_t out_zp = p->out_zp, act_min = p->act_min, act_max = p->act_max;
  const int full = act_min == -128 && act_max == 127;
  const int8_t *ta[kDwTapsMax];
  const int8_t *tb[kDwTapsMax];
  int8_t zp_row[kStackOutMax] __attribute__((aligned(4)));
  int32_t acc[2 * kStackOutMax] __attribute__((aligned(8)));
  memset(zp_row, (int)(int8_t)p->in_zp, (size_t)ch);
  for (int32_t b = 0; b < p->batches; b++) {
    const int8_t *img = in + (size_t)b * p->in_h * p->in_w * ch;
    int8_t *dst = out + (size_t)b * pixels * ch;
    for (int32_t pix = 0; pix < pixels; pix += 2) {
      const int two = pix + 1 < pixels;
      const int32_t oya = pix / out_w, oxa = pix % out_w;
      const int32_t oyb = two ? (pix + 1) / out_w : oya, oxb = two ? (pix + 1) % out_w : oxa;
      dw_taps(p, img, zp_row, oya, oxa, ta);
      dw_taps(p, img, zp_row, oyb, oxb, tb);
      for (int32_t c = 0; c < ch; c += 4) {
        dw_q4_pair(ta, tb, c, p->weights + c, taps, ch, p->bias_folded + c, acc + 2 * c);
      }
      int8_t *oa = dst + (size_t)pix * ch;
      int8_t *ob = two ? oa + ch : oa; /* lone pixel: b results land on a's, then a's */
      if (full) {
        nt_dsp_requant_cols_ssat(acc, p->multiplier, p->shift, out_zp, ch, oa,
                                 (int32_t)(ob - oa));
      } else {
        requant_cols_clamp(acc, p->multiplier, p->shift, out_zp, act_min, act_max, ch, oa,
                           (int32_t)(ob - oa));
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
              const uint32_t x02 = __sxtb16(xv), x13 = sxtb16_ror8(xv);
              const uint32_t w02 = __sxtb16(wv), w13 = sxtb16_ror8(wv);
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


/* ---- max pool ------------------------------------------------------------------------------ */

/* Four channels per word: SSUB8 sets a GE flag per byte where a >= b, SEL then takes a's byte
 * there and b's elsewhere: a bytewise signed max in two instructions. The window is clipped to
 * the image (TFLM counts only valid taps), so every output sees at least one tap. */
static inline uint32_t max4(uint32_t a, uint32_t b) {
  (void)__ssub8(a, b);
  return __sel(a, b);
}

static inline uint32_t min4(uint32_t a, uint32_t b) {
  (void)__ssub8(a, b);
  return __sel(b, a);
}

int nt_max_pool_dsp(const nt_pool_params *p, const int8_t *in, int8_t *out) {
  const int32_t ch = p->channels;
  const int32_t body = ch & ~3;
  const int32_t in_w = p->in_w;
  const int full = p->act_min <= -128 && p->act_max >= 127;
  const uint32_t lo4 = (uint32_t)(uint8_t)(int8_t)p->act_min * 0x01010101u;
  const uint32_t hi4 = (uint32_t)(uint8_t)(int8_t)p->act_max * 0x01010101u;
  for (int32_t b = 0; b < p->batches; b++) {
    const int8_t *img = in + (size_t)b * p->in_h * in_w * ch;
    int8_t *dst = out + (size_t)b * p->out_h * p->out_w * ch;
    for (int32_t oy = 0; oy < p->out_h; oy++) {
      const int32_t y0 = oy * p->stride_h - p->pad_top;
      const int32_t fy0 = y0 < 0 ? 0 : y0;
      const int32_t fy1 = y0 + p->filter_h < p->in_h ? y0 + p->filter_h : p->in_h;
      for (int32_t ox = 0; ox < p->out_w; ox++) {
        const int32_t x0 = ox * p->stride_w - p->pad_left;
        const int32_t fx0 = x0 < 0 ? 0 : x0;
        const int32_t fx1 = x0 + p->filter_w < in_w ? x0 + p->filter_w : in_w;
        if (fy0 >= fy1 || fx0 >= fx1) {
          return NT_ERR_PARAM;
        }
        const int8_t *first = img + ((size_t)fy0 * in_w + fx0) * ch;
        int32_t c = 0;
        for (; c < body; c += 4) {
          uint32_t m = ld32(first + c);
          for (int32_t y = fy0; y < fy1; y++) {
            const int8_t *row = img + ((size_t)y * in_w) * ch + c;
            for (int32_t x = fx0; x < fx1; x++) {
              m = max4(m, ld32(row + (size_t)x * ch));
            }
          }
          if (!full) {
            m = min4(max4(m, lo4), hi4);
          }
          memcpy(dst + c, &m, sizeof(m));
        }
        for (; c < ch; c++) {
          int32_t m = first[c];
          for (int32_t y = fy0; y < fy1; y++) {
            for (int32_t x = fx0; x < fx1; x++) {
              const int32_t v = img[((size_t)y * in_w + x) * ch + c];
              m = v > m ? v : m;
            }
          }
          dst[c] = (int8_t)nt_clamp(m, p->act_min, p->act_max);
        }
        dst += ch;
      }
    }
  }
  return NT_OK;
}

#else
/* Not a DSP target: the c99 kernels serve. ISO C wants a declaration in every file. */
typedef int nt_kernels_dsp_unused_t;
#endif /* __ARM_FEATURE_DSP */
