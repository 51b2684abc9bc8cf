/* Requantization helpers of every kernel (private to firmware/lib/backend_aot: include after
 * kernels.h). The arithmetic is TFLM's MultiplyByQuantizedMultiplier (kernels.h nt_mul_q),
 * plus the output zero point and the activation clamp.
 *
 * Two sets, on purpose: the c99 kernels use the reference form below, which any C99
 * compiler turns into correct code; the DSP kernels (inside __ARM_FEATURE_DSP) use
 * algebraically equal forms that take fewer instructions on the Cortex-M4 (one SMULL/SMLAL
 * sequence instead of two rounding steps, SSAT for the clamp), which is what QEMU's -icount
 * and the board's cycle counter measure. Both are checked bit for bit against each other
 * and TFLM (firmware/ports/qemu/kernel_check.c, the AOT differential tests).
 */
#ifndef NANO_TFLM_REQUANT_H_
#define NANO_TFLM_REQUANT_H_

#include <stdint.h>

#include "kernels.h"

/* c99: requantize accumulator acc of output channel c (entry 0 when !per_channel), add the
 * output zero point, clamp to the activation range. */
static inline int8_t requant(int32_t acc, const int32_t* mult, const int32_t* shift,
                             int32_t per_channel, int32_t c, int32_t out_zp, int32_t lo,
                             int32_t hi) {
    const int32_t i = per_channel ? c : 0;
    const int32_t v = nt_mul_q(acc, mult[i], shift[i]) + out_zp;
    return (int8_t)nt_clamp(v, lo, hi);
}

#if defined(__ARM_FEATURE_DSP)

#include <arm_acle.h>

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
    const int32_t em1 = ~shift;   /* e - 1 = -shift - 1 */
    const uint32_t t = 2u << em1; /* 2^e */
    uint32_t lo;
    int32_t hi;
    uint32_t n;
    __asm__(
        "smull %[lo], %[hi], %[a], %[m]\n\t"
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

/* requant_nn for multipliers that are 0 or in [2^30, 2^31) (what TFLM's
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
    const int32_t em1 = ~shift;            /* e - 1 */
    const uint32_t t = 2u << em1;          /* 2^e */
    uint32_t lo = 0x40000000u + (t << 30); /* 2^30 + low word of 2^(30+e) (e = 1 only) */
    int32_t hi = (int32_t)(t >> 2);        /* high word of 2^(30+e) */
    const int32_t sgn = acc >> 31;
    __asm__(
        "smlal %[lo], %[hi], %[a], %[m]\n\t"
        "adds %[lo], %[lo], %[s], lsl #31\n\t"
        "adc %[hi], %[hi], %[s]\n\t"
        : [lo] "+&r"(lo), [hi] "+&r"(hi)
        : [a] "r"(acc), [m] "r"(multiplier), [s] "r"(sgn)
        : "cc");
    return hi >> em1;
#endif
}

static inline int multipliers_normal(const int32_t* v, int32_t n) {
    for (int32_t i = 0; i < n; i++) {
        if (v[i] != 0 && v[i] < (1 << 30)) {
            return 0;
        }
    }
    return 1;
}

static inline int32_t requant_any(int32_t acc, int32_t multiplier, int32_t shift) {
    return multiplier < 0 ? nt_mul_q(acc, multiplier, shift) : requant_nn(acc, multiplier, shift);
}

/* requant_nn + zero point + activation clamp. full_range (act_min = -128, act_max = 127, the
 * usual case) clamps with one SSAT. */
static inline int32_t finish_norm(int32_t acc, int32_t multiplier, int32_t shift, int32_t out_zp,
                                  int full_range, int32_t act_min, int32_t act_max) {
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
    int32_t v = requant_any(acc, multiplier, shift) + out_zp;
    v = v < act_min ? act_min : v;
    v = v > act_max ? act_max : v;
    return (int8_t)v;
}

/* requant_norm + out_zp + SSAT #8 for n >= 1 channels of a pixel pair: acc[2o] (column a) to
 * oa[o], acc[2o + 1] (column b) to oa[b_off + o]; mult/shift per channel, multipliers 0 or in
 * [2^30, 2^31) (the caller checks). The same arithmetic as requant_norm, in registers. */
void nt_dsp_requant_cols_ssat(const int32_t* acc, const int32_t* mult, const int32_t* shift,
                              int32_t out_zp, int32_t n, int8_t* oa, int32_t b_off);
/* nt_dsp_requant_cols_ssat, then the (narrower) activation clamp on the stored bytes. */
void nt_dsp_requant_cols_clamp(const int32_t* acc, const int32_t* mult, const int32_t* shift,
                               int32_t out_zp, int32_t act_min, int32_t act_max, int32_t n,
                               int8_t* oa, int32_t b_off);

#endif /* __ARM_FEATURE_DSP */

#endif /* NANO_TFLM_REQUANT_H_ */
