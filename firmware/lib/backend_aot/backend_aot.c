/* backend.h over ahead-of-time generated C (model_aot.{h,c} from trainer/aot): no interpreter,
 * no flatbuffer parsing, the tensor arena is planned offline inside model_aot.c. This file
 * only owns the input and output tensors the core reads and writes. */
#include "backend.h"

#include "model_aot.h"

/* 16-byte alignment lets the DSP kernels read the input with word loads. */
#if defined(__GNUC__)
#define kAlign16 __attribute__((aligned(16)))
#else
#define kAlign16
#endif

static int8_t g_input[MODEL_AOT_INPUT_BYTES] kAlign16;
static int8_t g_output[MODEL_AOT_OUTPUT_BYTES] kAlign16;

int backend_init(void) {
    return 0;
}
const char* backend_init_error(void) {
    return "";
} /* init cannot fail */
int8_t* backend_input(void) {
    return g_input;
}
size_t backend_input_bytes(void) {
    return sizeof(g_input);
}
int backend_invoke(void) {
    return model_aot_invoke(g_input, g_output);
}
const int8_t* backend_output(void) {
    return g_output;
}
size_t backend_output_bytes(void) {
    return sizeof(g_output);
}
const char* backend_name(void) {
    return "aot";
}
size_t backend_arena_bytes(void) {
    return MODEL_AOT_ARENA_BYTES;
}
/* The offline plan sizes the arena to the peak of live tensors, so all of it is used. */
size_t backend_arena_used_bytes(void) {
    return MODEL_AOT_ARENA_BYTES;
}
