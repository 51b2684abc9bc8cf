/* Max pool, Cortex-M4 DSP variant (bit-exact with pool_c99.c and TFLM). */
#include "kernels.h"

#if defined(__ARM_FEATURE_DSP)

#include "simd_dsp.h"

/* Four channels per word: SSUB8 sets a GE flag per byte where a >= b, SEL then takes a's byte
 * there and b's elsewhere: a bytewise signed max in two instructions. The window is clipped to
 * the image (TFLM counts only valid taps), so every output sees at least one tap. */
static inline uint32_t max4(uint32_t a, uint32_t b) {
    (void)__ssub8(a, b);
    return __sel(a, b);
}

static inline uint32_t min4(uint32_t a, uint32_t b) {
    (void)__ssub8(a, b);
    return __sel(b, a);
}

int nt_max_pool_dsp(const nt_pool_params* p, const int8_t* in, int8_t* out) {
    const int32_t ch = p->channels;
    const int32_t body = ch & ~3;
    const int32_t in_w = p->in_w;
    const int full = p->act_min <= -128 && p->act_max >= 127;
    const uint32_t lo4 = (uint32_t)(uint8_t)(int8_t)p->act_min * 0x01010101u;
    const uint32_t hi4 = (uint32_t)(uint8_t)(int8_t)p->act_max * 0x01010101u;
    for (int32_t b = 0; b < p->batches; b++) {
        const int8_t* img = in + (size_t)b * p->in_h * in_w * ch;
        int8_t* dst = out + (size_t)b * p->out_h * p->out_w * ch;
        for (int32_t oy = 0; oy < p->out_h; oy++) {
            const int32_t y0 = oy * p->stride_h - p->pad_top;
            const int32_t fy0 = y0 < 0 ? 0 : y0;
            const int32_t fy1 = y0 + p->filter_h < p->in_h ? y0 + p->filter_h : p->in_h;
            for (int32_t ox = 0; ox < p->out_w; ox++) {
                const int32_t x0 = ox * p->stride_w - p->pad_left;
                const int32_t fx0 = x0 < 0 ? 0 : x0;
                const int32_t fx1 = x0 + p->filter_w < in_w ? x0 + p->filter_w : in_w;
                if (fy0 >= fy1 || fx0 >= fx1) {
                    return NT_ERR_PARAM;
                }
                const int8_t* first = img + ((size_t)fy0 * in_w + fx0) * ch;
                int32_t c = 0;
                for (; c < body; c += 4) {
                    uint32_t m = ld32(first + c);
                    for (int32_t y = fy0; y < fy1; y++) {
                        const int8_t* row = img + ((size_t)y * in_w) * ch + c;
                        for (int32_t x = fx0; x < fx1; x++) {
                            m = max4(m, ld32(row + (size_t)x * ch));
                        }
                    }
                    if (!full) {
                        m = min4(max4(m, lo4), hi4);
                    }
                    memcpy(dst + c, &m, sizeof(m));
                }
                for (; c < ch; c++) {
                    int32_t m = first[c];
                    for (int32_t y = fy0; y < fy1; y++) {
                        for (int32_t x = fx0; x < fx1; x++) {
                            const int32_t v = img[((size_t)y * in_w + x) * ch + c];
                            m = v > m ? v : m;
                        }
                    }
                    dst[c] = (int8_t)nt_clamp(m, p->act_min, p->act_max);
                }
                dst += ch;
            }
        }
    }
    return NT_OK;
}

#else
/* Not a DSP target: the c99 kernels serve. ISO C wants a declaration in every file. */
typedef int nt_pool_dsp_unused_t;
#endif /* __ARM_FEATURE_DSP */
