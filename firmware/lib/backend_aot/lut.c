/* One-input element-wise ops as a 256-entry table probed from TFLM
 * by the generator. Portable C99, no variant. */
#include "kernels.h"

int nt_lut(const int8_t table[256], const int8_t* in, int8_t* out, int32_t count) {
    for (int32_t i = 0; i < count; ++i) {
        out[i] = table[(uint8_t)in[i]];
    }
    return NT_OK;
}
