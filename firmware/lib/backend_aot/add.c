/* Element-wise ADD (same shape or scalar second operand), TFLM's
 * int8 arithmetic. Portable C99, no variant. */
#include "kernels.h"

int nt_add(const nt_add_params* p, const int8_t* in1, const int8_t* in2, int8_t* out) {
    for (int32_t i = 0; i < p->count; ++i) {
        const int32_t a = (p->in1_offset + in1[i]) * (1 << p->left_shift);
        const int32_t b = (p->in2_offset + in2[i * p->in2_stride]) * (1 << p->left_shift);
        const int32_t sa = nt_mul_q(a, p->in1_multiplier, p->in1_shift);
        const int32_t sb = nt_mul_q(b, p->in2_multiplier, p->in2_shift);
        const int32_t v = nt_mul_q(sa + sb, p->out_multiplier, p->out_shift) + p->out_offset;
        out[i] = (int8_t)nt_clamp(v, p->act_min, p->act_max);
    }
    return NT_OK;
}
