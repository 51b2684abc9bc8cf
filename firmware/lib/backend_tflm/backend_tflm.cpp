// TFLM interpreter glue: backend.h on top of the TFLite Micro Arduino library pinned in
// platformio.ini (tensorflow/tflite-micro-arduino-examples @ 7948b85, whose TFLM was last synced
// on 2023-02-27). Every TFLM call below matches that commit's headers (micro_interpreter.h,
// micro_mutable_op_resolver.h, schema_generated.h, core/c/common.h, debug_log.h):
// MicroInterpreter without an error reporter, no AllOpsResolver. The test suite's tflm_stub
// mirrors those declarations; test_platformio.py compiles this file against them and runs it in
// the host firmware.
//
// The op resolver is not written by hand: MODEL_OPS(X) in the generated model_meta.h lists the
// model's ops (one MicroMutableOpResolver method name each) and MODEL_OP_COUNT sizes the
// resolver, so the firmware registers exactly the kernels the model needs and links no others.
//
// TFLM's log: the library prints through DebugLog(), which its system_setup.cpp sends to
// Serial, i.e. raw into the protocol's frame stream. The TFLM envs link with
// -Wl,--wrap=DebugLog, so every call to DebugLog from another object file lands in
// __wrap_DebugLog below and each message goes out as a protocol log line (core_log).
#include "backend_tflm.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

// Library entry header: including it makes the Arduino toolchain (and PlatformIO's dependency
// finder) build the TFLM library sources.
#include <TensorFlowLite.h>

#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"

#include "core.h"
#include "model_data.h"
#include "model_meta.h"

namespace {

// Arena: export measures the model's need with the TFLM reference interpreter on the host and
// adds a margin for the 32-bit, older library (MODEL_ARENA_BYTES in model_meta.h; the measured
// figure is MODEL_ARENA_MEASURED_BYTES). The device reports what the interpreter really used
// (arena_used_bytes), so the margin can be checked on every run. -DNANO_TFLM_ARENA_BYTES=N
// overrides it.
#ifdef NANO_TFLM_ARENA_BYTES
constexpr size_t kArenaBytes = NANO_TFLM_ARENA_BYTES;
#else
constexpr size_t kArenaBytes = MODEL_ARENA_BYTES;
#endif

// 16-byte alignment: TFLM aligns tensors to 16 bytes inside the arena and CMSIS-NN kernels
// expect it; an unaligned arena would waste up to 15 bytes and misalign every buffer.
alignas(16) uint8_t g_arena[kArenaBytes];

// Not yet initialised (1), else backend_init's result: init runs once, because the resolver
// refuses an op registered twice.
int g_init_status = 1;
tflite::MicroInterpreter* g_interpreter = nullptr;
TfLiteTensor* g_input = nullptr;
TfLiteTensor* g_output = nullptr;

// ---- TFLM's log as protocol log lines ----

// One message is assembled here: TFLM's MicroPrintf calls DebugLog twice per message, the
// text then "\r\n". Longer text is sent in pieces of this size.
constexpr size_t kLogLineBytes = 128;
constexpr size_t kPrefixLen = 6;  // "tflm: ", written once; only the text after it changes
char g_log_line[kPrefixLen + kLogLineBytes + 1] = "tflm: ";
size_t g_log_len = 0;

// Why init failed, for ERR_NOT_READY (backend_init_error); the first TFLM message of the failing
// step is kept as the detail (e.g. the allocator's "missing" bytes, an op not found).
char g_init_error[160];
char g_init_detail[96];
bool g_initialising = false;

void copy_text(char* dst, size_t cap, const char* src) {
    size_t n = strlen(src);
    if (n >= cap) {
        n = cap - 1;
    }
    memcpy(dst, src, n);
    dst[n] = '\0';
}

void append_text(char* dst, size_t cap, const char* src) {
    size_t len = strlen(dst);
    if (len + 1 < cap) {
        copy_text(dst + len, cap - len, src);
    }
}

void flush_log_line() {
    if (g_log_len == 0) {
        return;
    }
    g_log_line[kPrefixLen + g_log_len] = '\0';
    if (g_initialising && g_init_detail[0] == '\0') {
        copy_text(g_init_detail, sizeof(g_init_detail), g_log_line + kPrefixLen);
    }
    core_log(g_log_line);
    g_log_len = 0;
}

void append_u32(char* dst, size_t cap, uint32_t v) {
    char digits[11];
    size_t n = sizeof(digits) - 1;
    digits[n] = '\0';
    do {
        digits[--n] = static_cast<char>('0' + v % 10u);
        v /= 10u;
    } while (v != 0u);
    append_text(dst, cap, &digits[n]);
}

// A new init step: messages of earlier steps, which succeeded, are not its detail.
void begin_step() {
    flush_log_line();
    g_init_detail[0] = '\0';
}

// Records what failed (one line, for ERR_NOT_READY) with the first TFLM message as the detail.
void init_failed(const char* what, size_t arena_bytes = 0) {
    copy_text(g_init_error, sizeof(g_init_error), what);
    if (arena_bytes != 0) {
        append_u32(g_init_error, sizeof(g_init_error), static_cast<uint32_t>(arena_bytes));
        append_text(g_init_error, sizeof(g_init_error), " B");
    }
    flush_log_line();
    if (g_init_detail[0] != '\0') {
        append_text(g_init_error, sizeof(g_init_error), " (");
        append_text(g_init_error, sizeof(g_init_error), g_init_detail);
        append_text(g_init_error, sizeof(g_init_error), ")");
    }
}

// Registers the model's ops; MODEL_OPS expands to X(AddConv2D) X(AddFullyConnected) ...
template <unsigned int kOpCount>
int register_ops(tflite::MicroMutableOpResolver<kOpCount>& resolver) {
#define NANO_TFLM_ADD_OP(add_method)                                         \
    if (resolver.add_method() != kTfLiteOk) {                                \
        init_failed("tflm: MicroMutableOpResolver::" #add_method " failed"); \
        return BACKEND_TFLM_ERR_RESOLVER;                                    \
    }
    MODEL_OPS(NANO_TFLM_ADD_OP)
#undef NANO_TFLM_ADD_OP
    return 0;
}

// The core quantizes pixels with model_meta.h's lookup table and reads MODEL_OUTPUT_BYTES
// scores: the interpreter's tensors must be exactly what export described, or every result
// would be silently wrong.
bool tensors_match_meta(const TfLiteTensor* in, const TfLiteTensor* out) {
    return in != nullptr && out != nullptr && in->type == kTfLiteInt8 && out->type == kTfLiteInt8 &&
           in->bytes == MODEL_INPUT_BYTES && out->bytes == MODEL_OUTPUT_BYTES &&
           in->params.zero_point == MODEL_INPUT_ZERO_POINT &&
           out->params.zero_point == MODEL_OUTPUT_ZERO_POINT &&
           in->params.scale == MODEL_INPUT_SCALE && out->params.scale == MODEL_OUTPUT_SCALE;
}

int init_once() {
    // Maps the flatbuffer in place (no copy, no parsing yet).
    const tflite::Model* model = tflite::GetModel(g_model_data);
    if (model->version() != TFLITE_SCHEMA_VERSION) {
        init_failed("tflm: model schema version differs from the library's");
        return BACKEND_TFLM_ERR_SCHEMA;
    }

    // Function-local statics: constructed on first use (after the Arduino core is up), never
    // destroyed, no heap.
    static tflite::MicroMutableOpResolver<MODEL_OP_COUNT> resolver;
    begin_step();
    int status = register_ops(resolver);
    if (status != 0) {
        return status;
    }

    begin_step();
    static tflite::MicroInterpreter interpreter(model, resolver, g_arena, kArenaBytes);
    if (interpreter.AllocateTensors() != kTfLiteOk) {
        init_failed("tflm: AllocateTensors failed, arena ", kArenaBytes);
        return BACKEND_TFLM_ERR_ALLOCATE;
    }
    begin_step();
    TfLiteTensor* in = interpreter.input(0);
    TfLiteTensor* out = interpreter.output(0);
    if (!tensors_match_meta(in, out)) {
        init_failed("tflm: input/output tensors differ from model_meta.h (re-export the model)");
        return BACKEND_TFLM_ERR_TENSORS;
    }
    g_interpreter = &interpreter;
    g_input = in;
    g_output = out;
    return 0;
}

}  // namespace

extern "C" {

// Every DebugLog call of the TFLM library (linked with -Wl,--wrap=DebugLog). Same signature as
// the pinned debug_log.h's DebugLog. A message ends at "\r" or "\n"; other control bytes
// become spaces, so a log line can never contain a frame delimiter.
void __wrap_DebugLog(const char* s) {
    for (; *s != '\0'; ++s) {
        char c = *s;
        if (c == '\r' || c == '\n') {
            flush_log_line();
            continue;
        }
        if (g_log_len == kLogLineBytes) {
            flush_log_line();
        }
        g_log_line[kPrefixLen + g_log_len++] = (c < 0x20 || c > 0x7e) ? ' ' : c;
    }
}

int backend_init(void) {
    if (g_init_status == 1) {
        g_initialising = true;
        g_init_status = init_once();
        flush_log_line();  // a message without its "\r\n" still reaches the host
        g_initialising = false;
    }
    return g_init_status;
}

const char* backend_init_error(void) {
    return g_init_status == 0 ? "" : g_init_error;
}

int8_t* backend_input(void) {
    return g_input != nullptr ? g_input->data.int8 : nullptr;
}

size_t backend_input_bytes(void) {
    return g_input != nullptr ? g_input->bytes : 0u;
}

int backend_invoke(void) {
    if (g_interpreter == nullptr) {
        return -1;
    }
    return g_interpreter->Invoke() == kTfLiteOk ? 0 : -1;
}

const int8_t* backend_output(void) {
    return g_output != nullptr ? g_output->data.int8 : nullptr;
}

size_t backend_output_bytes(void) {
    return g_output != nullptr ? g_output->bytes : 0u;
}

const char* backend_name(void) {
    return "tflm";
}

size_t backend_arena_bytes(void) {
    return kArenaBytes;
}

// What the allocator really took (persistent + planned tensors), valid after AllocateTensors;
// 0 before a successful init.
size_t backend_arena_used_bytes(void) {
    return g_interpreter != nullptr ? g_interpreter->arena_used_bytes() : 0u;
}

}  // extern "C"
