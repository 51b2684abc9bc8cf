/* Data movement (TRANSPOSE, SLICE, SPLIT, ...) as a strided
 * gather probed from TFLM by the generator. Portable C99, no variant. */
#include "kernels.h"

#include <string.h>

int nt_gather(const nt_gather_params* p, const int8_t* in, int8_t* out) {
    int32_t shape[NT_MAX_DIMS], stride[NT_MAX_DIMS];
    const int32_t pad = NT_MAX_DIMS - p->dims;
    if (p->dims < 1 || p->dims > NT_MAX_DIMS) {
        return NT_ERR_PARAM;
    }
    /* Right-align into NT_MAX_DIMS loops so one loop nest serves every rank. */
    for (int32_t d = 0; d < NT_MAX_DIMS; ++d) {
        shape[d] = d < pad ? 1 : p->out_shape[d - pad];
        stride[d] = d < pad ? 0 : p->in_stride[d - pad];
    }
    size_t o = 0;
    for (int32_t i0 = 0; i0 < shape[0]; ++i0) {
        for (int32_t i1 = 0; i1 < shape[1]; ++i1) {
            for (int32_t i2 = 0; i2 < shape[2]; ++i2) {
                for (int32_t i3 = 0; i3 < shape[3]; ++i3) {
                    const int32_t base = p->offset + i0 * stride[0] + i1 * stride[1] +
                                         i2 * stride[2] + i3 * stride[3];
                    if (stride[5] == 1) {
                        for (int32_t i4 = 0; i4 < shape[4]; ++i4) {
                            memcpy(out + o, in + base + i4 * stride[4], (size_t)shape[5]);
                            o += (size_t)shape[5];
                        }
                    } else if (shape[5] == 2) {
                        /* e.g. ShuffleNet's channel shuffle (a 2-group transpose): pairs. */
                        const int8_t* src = in + base;
                        int8_t* dst = out + o;
                        const int32_t s4 = stride[4], s5 = stride[5];
                        for (int32_t i4 = 0; i4 < shape[4]; ++i4, src += s4, dst += 2) {
                            dst[0] = src[0];
                            dst[1] = src[s5];
                        }
                        o += 2 * (size_t)shape[4];
                    } else {
                        for (int32_t i4 = 0; i4 < shape[4]; ++i4) {
                            const int8_t* src = in + base + i4 * stride[4];
                            for (int32_t i5 = 0; i5 < shape[5]; ++i5, src += stride[5]) {
                                out[o++] = *src;
                            }
                        }
                    }
                }
            }
        }
    }
    return NT_OK;
}
