/* TEST-ONLY STAND-IN BACKEND: not a model. It lets the protocol, core and fuzz tests run the
 * host firmware before (or without) a generated model_aot.c. The "model" is a fixed integer
 * function the tests recompute in Python (standin.py beside this file):
 *   score[k] = clamp((sum over i with i % 10 == k of x[i] * w[i]) >> 8, -128, 127),
 *   w[i] = (i * 7) % 11 - 5, x = the int8 input tensor (784 values).
 * Built only by `make -C firmware/ports/host BACKEND=standin`.
 * Fault hooks for the tests of the core's error paths (compile-time, off by default):
 *   NANO_TFLM_STANDIN_FAIL_INIT    backend_init fails (ERR_NOT_READY path)
 *   NANO_TFLM_STANDIN_FAIL_INVOKE  invoke fails when the first pixel is 0xEE (ERR_INVOKE) */
#include "backend.h"

#include "model_meta.h"

static int8_t g_input[MODEL_INPUT_BYTES];
static int8_t g_output[MODEL_OUTPUT_BYTES];

#ifdef NANO_TFLM_STANDIN_FAIL_INIT
int backend_init(void) {
    return -1;
}
const char* backend_init_error(void) {
    return "standin: NANO_TFLM_STANDIN_FAIL_INIT";
}
#else
int backend_init(void) {
    return 0;
}
const char* backend_init_error(void) {
    return "";
}
#endif
int8_t* backend_input(void) {
    return g_input;
}
size_t backend_input_bytes(void) {
    return sizeof(g_input);
}
const int8_t* backend_output(void) {
    return g_output;
}
size_t backend_output_bytes(void) {
    return sizeof(g_output);
}
const char* backend_name(void) {
    return "standin";
}
size_t backend_arena_bytes(void) {
    return 0u;
}
size_t backend_arena_used_bytes(void) {
    return 0u;
}

int backend_invoke(void) {
#ifdef NANO_TFLM_STANDIN_FAIL_INVOKE
    if (g_input[0] == kModelInputLut[0xEE]) {
        return -1;
    }
#endif
    int32_t acc[MODEL_OUTPUT_BYTES] = {0};
    for (int32_t i = 0; i < (int32_t)MODEL_INPUT_BYTES; ++i) {
        acc[i % MODEL_OUTPUT_BYTES] += (int32_t)g_input[i] * ((i * 7) % 11 - 5);
    }
    for (int k = 0; k < (int)MODEL_OUTPUT_BYTES; ++k) {
        /* Arithmetic shift of a negative value: floor division by 256, as Python's >>. */
        int32_t v = acc[k] >= 0 ? acc[k] / 256 : -((-acc[k] + 255) / 256);
        g_output[k] = (int8_t)(v < -128 ? -128 : (v > 127 ? 127 : v));
    }
    return 0;
}
