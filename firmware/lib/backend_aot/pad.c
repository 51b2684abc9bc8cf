/* PAD / PADV2 (int8): a constant border around an N-d tensor, as TFLM's reference_ops::Pad.
 * Input and output share scale and zero point (the generator checks the output against the
 * TFLM reference at export), so padding is a byte copy plus a fill. No DSP variant: it only
 * moves bytes. */
#include <string.h>

#include "kernels.h"

int nt_pad(const nt_pad_params* p, const int8_t* in, int8_t* out) {
    int32_t in_shape[NT_MAX_DIMS], before[NT_MAX_DIMS], out_shape[NT_MAX_DIMS];
    if (p->dims < 1 || p->dims > NT_MAX_DIMS) {
        return NT_ERR_PARAM;
    }
    /* Right-align into NT_MAX_DIMS loops so one loop nest serves every rank. */
    const int32_t lead = NT_MAX_DIMS - p->dims;
    size_t total = 1;
    for (int32_t d = 0; d < NT_MAX_DIMS; ++d) {
        in_shape[d] = d < lead ? 1 : p->in_shape[d - lead];
        before[d] = d < lead ? 0 : p->pad_before[d - lead];
        out_shape[d] = d < lead ? 1 : p->out_shape[d - lead];
        if (before[d] < 0 || before[d] + in_shape[d] > out_shape[d]) {
            return NT_ERR_PARAM;
        }
        total *= (size_t)out_shape[d];
    }
    memset(out, (int8_t)p->value, total);
    /* Output strides in elements, innermost last. */
    size_t stride[NT_MAX_DIMS];
    stride[NT_MAX_DIMS - 1] = 1;
    for (int32_t d = NT_MAX_DIMS - 2; d >= 0; --d) {
        stride[d] = stride[d + 1] * (size_t)out_shape[d + 1];
    }
    const size_t row = (size_t)in_shape[5];
    for (int32_t i0 = 0; i0 < in_shape[0]; ++i0) {
        for (int32_t i1 = 0; i1 < in_shape[1]; ++i1) {
            for (int32_t i2 = 0; i2 < in_shape[2]; ++i2) {
                for (int32_t i3 = 0; i3 < in_shape[3]; ++i3) {
                    for (int32_t i4 = 0; i4 < in_shape[4]; ++i4) {
                        const size_t o = (size_t)(i0 + before[0]) * stride[0] +
                                         (size_t)(i1 + before[1]) * stride[1] +
                                         (size_t)(i2 + before[2]) * stride[2] +
                                         (size_t)(i3 + before[3]) * stride[3] +
                                         (size_t)(i4 + before[4]) * stride[4] + (size_t)before[5];
                        memcpy(out + o, in, row);
                        in += row;
                    }
                }
            }
        }
    }
    return NT_OK;
}
