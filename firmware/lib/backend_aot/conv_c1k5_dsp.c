/* Conv2d, Cortex-M4 DSP variant: the pixel-pair loop of the 1-channel, 5-tap-row path
 * (conv_c1k5_ok in conv_dsp.c explains the arithmetic), in assembly for the same reason as
 * nt_dsp_conv_pairs (AAPCS, r4-r11 saved). */
#include "kernels.h"

#if defined(__ARM_FEATURE_DSP)

/* nt_dsp_c1k5_pair: contract and declaration in conv_dsp.c. */
__asm__(
    "  .text\n"
    "  .syntax unified\n"
    "  .thumb\n"
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
    "  .text\n");

#else
/* Not a DSP target: the c99 kernels serve. ISO C wants a declaration in every file. */
typedef int nt_conv_c1k5_dsp_unused_t;
#endif /* __ARM_FEATURE_DSP */
