/* requant_norm: the DSP kernels' requantization for the multipliers the generator emits, shared
 * by kernels_dsp.c and kernels_sparse_dsp.c (private to the DSP kernels; include after
 * kernels.h, inside their __ARM_FEATURE_DSP guard).
 */
#ifndef NANO_TFLM_REQUANT_DSP_H_
#define NANO_TFLM_REQUANT_DSP_H_

#include <stdint.h>

#include "kernels.h"

/* kernels_dsp.c's requant_nn for multipliers that are 0 or in [2^30, 2^31) (what TFLM's
 * QuantizeMultiplier and the generator produce): then P = acc * m + 2^30 < 0 exactly when
 * acc < 0, except for acc = -1, m = 2^30 where P = 0, whose result is 0 either way (checked
 * exhaustively on edge values and on 3M random cases against the reference formula). So the
 * sign correction comes from acc, known before the multiply, and the constant 2^30 + 2^(30+e)
 * is the SMLAL's initial value: 3 instructions after the constant. */
static inline int32_t requant_norm(int32_t acc, int32_t multiplier, int32_t shift) {
#ifdef NT_SINGLE_ROUNDING
  return nt_mul_q(acc, multiplier, shift);
#else
  if (shift >= 0) {
    const int32_t x = (int32_t)((uint32_t)acc << shift);
    return (int32_t)(((int64_t)x * multiplier + ((int64_t)1 << 30)) >> 31);
  }
  const int32_t em1 = ~shift;                 /* e - 1 */
  const uint32_t t = 2u << em1;               /* 2^e */
  uint32_t lo = 0x40000000u + (t << 30);      /* 2^30 + low word of 2^(30+e) (e = 1 only) */
  int32_t hi = (int32_t)(t >> 2);             /* high word of 2^(30+e) */
  const int32_t sgn = acc >> 31;
  __asm__("smlal %[lo], %[hi], %[a], %[m]\n\t"
          "adds %[lo], %[lo], %[s], lsl #31\n\t"
          "adc %[hi], %[hi], %[s]\n\t"
          : [lo] "+&r"(lo), [hi] "+&r"(hi)
          : [a] "r"(acc), [m] "r"(multiplier), [s] "r"(sgn)
          : "cc");
  return hi >> em1;
#endif
}

#endif  /* NANO_TFLM_REQUANT_DSP_H_ */
