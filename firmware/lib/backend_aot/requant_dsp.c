/* The DSP kernels' out-of-line requantization (declared in requant.h): a pixel pair's
 * channels in assembly (nt_dsp_requant_cols_ssat, the same arithmetic as requant_norm in
 * registers), and with a general activation clamp. Shared by conv_dsp.c and
 * depthwise_dsp.c. */
#include "kernels.h"

#if defined(__ARM_FEATURE_DSP)

#include "requant.h"
#include "simd_dsp.h"

__asm__(
    "  .text\n"
    "  .syntax unified\n"
    "  .thumb\n"
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
    "  .text\n");

/* Clamp n int8 values in place to [lo, hi] (each as four bytes): four at a time with
 * SSUB8/SEL, a bytewise signed max then min in four instructions. */
static __attribute__((noinline)) void clamp_bytes(int8_t* v, int32_t n, uint32_t lo4,
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
__attribute__((noinline)) void nt_dsp_requant_cols_clamp(const int32_t* acc, const int32_t* mult,
                                                         const int32_t* shift, int32_t out_zp,
                                                         int32_t act_min, int32_t act_max,
                                                         int32_t n, int8_t* oa, int32_t b_off) {
    nt_dsp_requant_cols_ssat(acc, mult, shift, out_zp, n, oa, b_off);
    const uint32_t lo4 = (uint32_t)(uint8_t)(int8_t)act_min * 0x01010101u;
    const uint32_t hi4 = (uint32_t)(uint8_t)(int8_t)act_max * 0x01010101u;
    clamp_bytes(oa, n, lo4, hi4);
    if (b_off != 0) {
        clamp_bytes(oa + b_off, n, lo4, hi4);
    }
}

#else
/* Not a DSP target: the c99 kernels serve. ISO C wants a declaration in every file. */
typedef int nt_requant_dsp_unused_t;
#endif /* __ARM_FEATURE_DSP */
