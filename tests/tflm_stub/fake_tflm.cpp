// TEST-ONLY fake of the few TFLM functions the glue calls (tests/tflm_stub/README.md). Like the
// library, it reports problems with MicroPrintf, which ends in DebugLog (fake_system_setup.cpp).
// Invoke computes output[k] = input[k], so a test can check each reply.
#include <stdio.h>
#include <string.h>

#include "fake_tflm.h"
#include "model_meta.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_log.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/micro/debug_log.h"

FakeTflm g_fake;

bool fake_tflm_configure(const char* mode) {
    g_fake.input.type = kTfLiteInt8;
    g_fake.input.bytes = MODEL_INPUT_BYTES;
    g_fake.input.params.scale = MODEL_INPUT_SCALE;
    g_fake.input.params.zero_point = MODEL_INPUT_ZERO_POINT;
    g_fake.output.type = kTfLiteInt8;
    g_fake.output.bytes = MODEL_OUTPUT_BYTES;
    g_fake.output.params.scale = MODEL_OUTPUT_SCALE;
    g_fake.output.params.zero_point = MODEL_OUTPUT_ZERO_POINT;
    g_fake.arena_used = 1234;
    if (strcmp(mode, "zero-point") == 0) {
        g_fake.input.params.zero_point += 1;
    } else if (strcmp(mode, "alloc-fail") == 0) {
        g_fake.allocate_fails = true;
    } else if (strcmp(mode, "missing-op") == 0) {
        g_fake.missing_op = true;
    } else if (strcmp(mode, "resolver-full") == 0) {
        g_fake.resolver_refuses = true;
    } else if (strcmp(mode, "ok") != 0) {
        return false;
    }
    return true;
}

// The library's micro_log.cpp: format, then DebugLog the text and "\r\n" (two calls).
void Log(const char* format, va_list args) {
    char buffer[256];
    vsnprintf(buffer, sizeof(buffer), format, args);
    DebugLog(buffer);
    DebugLog("\r\n");
}

void MicroPrintf(const char* format, ...) {
    va_list args;
    va_start(args, format);
    Log(format, args);
    va_end(args);
}

TfLiteStatus fake_tflm_register(const char* name, unsigned int capacity, unsigned int* count) {
    for (int i = 0; i < g_fake.registered_count; ++i) {
        if (strcmp(g_fake.registered[i], name) == 0) {
            MicroPrintf("fake resolver: %s called twice", name);
            return kTfLiteError;  // the real resolver refuses an op twice
        }
    }
    if (g_fake.resolver_refuses || *count >= capacity || g_fake.registered_count >= 64) {
        MicroPrintf("fake resolver: no room for %s (%u ops)", name, capacity);
        return kTfLiteError;  // resolver too small
    }
    g_fake.registered[g_fake.registered_count++] = name;
    ++*count;
    return kTfLiteOk;
}

namespace tflite {

TfLiteRegistration Register_ADD() {
    return TfLiteRegistration{0, nullptr};
}
TfLiteRegistration Register_AVERAGE_POOL_2D() {
    return TfLiteRegistration{1, nullptr};
}
TfLiteRegistration Register_CONV_2D() {
    return TfLiteRegistration{3, nullptr};
}
TfLiteRegistration Register_DEPTHWISE_CONV_2D() {
    return TfLiteRegistration{4, nullptr};
}
TfLiteRegistration Register_FULLY_CONNECTED() {
    return TfLiteRegistration{9, nullptr};
}
TfLiteRegistration Register_MAX_POOL_2D() {
    return TfLiteRegistration{17, nullptr};
}
TfLiteRegistration Register_MUL() {
    return TfLiteRegistration{18, nullptr};
}
TfLiteRegistration Register_PAD() {
    return TfLiteRegistration{34, nullptr};
}
TfLiteRegistration Register_SOFTMAX() {
    return TfLiteRegistration{25, nullptr};
}

const Model* GetModel(const void* buf) {
    static Model model{TFLITE_SCHEMA_VERSION};
    static Model wrong{0};
    const unsigned char* b = static_cast<const unsigned char*>(buf);
    return memcmp(b + 4, "TFL3", 4) == 0 ? &model : &wrong;
}

MicroInterpreter::MicroInterpreter(const Model* model, const MicroOpResolver& op_resolver,
                                   uint8_t* tensor_arena, size_t tensor_arena_size,
                                   MicroResourceVariables* resource_variables,
                                   MicroProfilerInterface* profiler)
    : arena_(tensor_arena), arena_size_(tensor_arena_size) {
    (void)model;
    (void)op_resolver;
    (void)resource_variables;
    (void)profiler;
    g_fake.arena_size_seen = tensor_arena_size;
}

MicroInterpreter::~MicroInterpreter() {}

TfLiteStatus MicroInterpreter::AllocateTensors() {
    ++g_fake.allocate_calls;
    if (g_fake.missing_op) {
        MicroPrintf("fake: no kernel registered for builtin op 3");
        return kTfLiteError;
    }
    if (g_fake.allocate_fails) {
        MicroPrintf("fake: arena too small, %u more bytes needed", 4321u);
        return kTfLiteError;
    }
    MicroPrintf("fake AllocateTensors: arena of %u bytes", static_cast<unsigned>(arena_size_));
    // Tensors live in the arena, as in TFLM.
    g_fake.input.data.int8 = reinterpret_cast<int8_t*>(arena_);
    g_fake.output.data.int8 = reinterpret_cast<int8_t*>(arena_ + g_fake.input.bytes);
    return g_fake.input.bytes + g_fake.output.bytes <= arena_size_ ? kTfLiteOk : kTfLiteError;
}

TfLiteStatus MicroInterpreter::Invoke() {
    ++g_fake.invoke_calls;
    MicroPrintf("fake Invoke #%d", g_fake.invoke_calls);
    for (size_t k = 0; k < g_fake.output.bytes && k < g_fake.input.bytes; ++k) {
        g_fake.output.data.int8[k] = g_fake.input.data.int8[k];
    }
    return kTfLiteOk;
}

TfLiteTensor* MicroInterpreter::input(size_t index) {
    return index == 0 ? &g_fake.input : nullptr;
}

TfLiteTensor* MicroInterpreter::output(size_t index) {
    return index == 0 ? &g_fake.output : nullptr;
}

TfLiteStatus MicroInterpreter::initialization_status() const {
    return kTfLiteOk;
}

size_t MicroInterpreter::arena_used_bytes() const {
    return g_fake.arena_used;
}

}  // namespace tflite
