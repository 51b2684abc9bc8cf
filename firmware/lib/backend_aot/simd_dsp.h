/* Shared by the Cortex-M4 DSP (SIMD) kernels (*_dsp.c; private to them: include after
 * kernels.h, inside their __ARM_FEATURE_DSP guard). Why the DSP kernels look the way they
 * do, for every op:
 *
 * Bit-exact with the c99 variants (<op>_c99.c) and TFLM: integer sums are exact whatever the
 * order, and requantization computes the same function (the algebra is in requant_nn and
 * requant_norm). Only the instruction count differs, which is what QEMU's -icount measures, so
 * the loops are shaped to execute few instructions per MAC:
 * - int8 pairs are split with SXTB16 (lanes 0 and 2) and SXTB16 ROR #8 (lanes 1 and 3), and two
 *   products are accumulated per SMLAD;
 * - activations are widened once into int16 scratch in that same (x0,x2),(x1,x3) lane order and
 *   shared across output rows: fully connected runs 2 rows x 8 inputs per step on weights the
 *   generator interleaved offline (NT_LAYOUT_FC_STACKED: one LDM of activations, one LDM of
 *   weights, each weight word multiplied once as it is and once unpacked: 14 instructions per
 *   16 MACs); conv runs 2 output pixels x 2 channels x 4 taps (one
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
 * Reads NT_LAYOUT_TFLITE (and NT_LAYOUT_FC_STACKED for fully connected). The conv fast path
 * keeps two 256-byte patches, a 512-byte offset table and 1 KiB of accumulators on the stack
 * (about 2 KiB); larger kernels take the scratch-staged path.
 * The requantization helpers are in requant.h.
 */
#ifndef NANO_TFLM_SIMD_DSP_H_
#define NANO_TFLM_SIMD_DSP_H_

#include <arm_acle.h>
#include <stdint.h>
#include <string.h>

#include "kernels.h"

/* SXTB16 with the ROR #8 folded in (GCC 12 emits a separate ROR for the intrinsic form). */
static inline uint32_t sxtb16_ror8(uint32_t v) {
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v));
    return r;
}

/* Unaligned 32-bit load: the Cortex-M4 does unaligned LDR in hardware and GCC emits one LDR. */
static inline uint32_t ld32(const void* p) {
    uint32_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

/* Small copies (im2col rows are often a few bytes): newlib-nano's memcpy goes byte by byte
 * behind a call, this moves words with unaligned LDR/STR. */
static inline void copy_small(int8_t* dst, const int8_t* src, int32_t n) {
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
/* unused: not every file that includes this widens (no inline hint: GCC decides, as before) */
static __attribute__((unused)) void widen_q4(const int8_t* in, int32_t n, uint32_t* dst) {
    for (int32_t k = 0; k < n; k += 4) {
        const uint32_t v = ld32(in + k);
        dst[0] = __sxtb16(v);
        dst[1] = sxtb16_ror8(v);
        dst += 2;
    }
}

static inline int32_t dot1_row(const int8_t* w, const uint32_t* x, int32_t quads, int32_t acc) {
    for (int32_t q = 0; q < quads; q++) {
        const uint32_t v = ld32(w);
        w += 4;
        acc = __smlad(__sxtb16(v), x[0], acc);
        acc = __smlad(sxtb16_ror8(v), x[1], acc);
        x += 2;
    }
    return acc;
}

/* Patches up to kStackPatchMax taps and layers up to kStackOutMax channels take the
 * stack-buffered paths of conv (conv_dsp.c) and depthwise (depthwise_dsp.c); larger
 * ones take the scratch-staged or generic paths. */
enum { kStackPatchMax = 256, kStackOutMax = 128 };

/* conv_staged_dsp.c, also used by conv_dsp.c's pixels whose window leaves the image. */
void nt_dsp_im2col_patch(const nt_conv_params* p, const int8_t* in, int32_t oy, int32_t ox,
                         int8_t* patch);
int nt_dsp_conv2d_staged(const nt_conv_params* p, const int8_t* in, int8_t* out);

#endif /* NANO_TFLM_SIMD_DSP_H_ */
