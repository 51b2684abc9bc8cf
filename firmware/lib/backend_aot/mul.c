/* Element-wise MUL (same shape or scalar second operand), TFLM's
 * int8 arithmetic. Portable C99, no variant. */
#include "kernels.h"

int nt_mul(const nt_mul_params* p, const int8_t* in1, const int8_t* in2, int8_t* out) {
    for (int32_t i = 0; i < p->count; ++i) {
        const int32_t a = p->in1_offset + in1[i];
        const int32_t b = p->in2_offset + in2[i * p->in2_stride];
        const int32_t v = nt_mul_q(a * b, p->out_multiplier, p->out_shift) + p->out_offset;
        out[i] = (int8_t)nt_clamp(v, p->act_min, p->act_max);
    }
    return NT_OK;
}

/* ---- softmax: gemmlowp fixed point, as TFLM's reference_ops::Softmax (int8) ---------------- */
