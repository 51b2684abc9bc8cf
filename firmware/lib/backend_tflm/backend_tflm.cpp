// TFLM interpreter glue: backend.h on top of the TFLite Micro Arduino library pinned in
// platformio.ini (tensorflow/tflite-micro-arduino-examples @ 2be8092d, TFLM of Feb 2023). Every
// TFLM call below was checked against that library's headers (micro_interpreter.h,
// schema_generated.h, core/c/common.h) and, for MicroMutableOpResolver, against tflite-micro's
// header of that period (default-constructible in every version; the Add* methods used are
// unchanged): MicroInterpreter without an error reporter, no AllOpsResolver.
// tests/tflm_stub/ holds those signatures; tests/test_platformio.py compiles this file with them.
//
// The op resolver is not written by hand: MODEL_OPS(X) in the generated model_meta.h lists the
// model's ops (one MicroMutableOpResolver method name each) and MODEL_OP_COUNT sizes the
// resolver, so the firmware registers exactly the kernels the model needs and links no others.
#include "backend_tflm.h"

#include <stddef.h>
#include <stdint.h>

// Library entry header: including it makes the Arduino toolchain (and PlatformIO's dependency
// finder) build the TFLM library sources.
#include <TensorFlowLite.h>

#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"

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
tflite::MicroInterpreter *g_interpreter = nullptr;
TfLiteTensor *g_input = nullptr;
TfLiteTensor *g_output = nullptr;

// Registers the model's ops; MODEL_OPS expands to X(AddConv2D) X(AddFullyConnected) ...
template <unsigned int kOpCount>
int register_ops(tflite::MicroMutableOpResolver<kOpCount> &resolver) {
#define NANO_TFLM_ADD_OP(add_method)              \
  if (resolver.add_method() != kTfLiteOk) {       \
    return BACKEND_TFLM_ERR_RESOLVER;             \
  }
  MODEL_OPS(NANO_TFLM_ADD_OP)
#undef NANO_TFLM_ADD_OP
  return 0;
}

// The core quantizes pixels with model_meta.h's lookup table and reads MODEL_OUTPUT_BYTES
// scores: the interpreter's tensors must be exactly what export described, or every result
// would be silently wrong.
bool tensors_match_meta(const TfLiteTensor *in, const TfLiteTensor *out) {
  return in != nullptr && out != nullptr && in->type == kTfLiteInt8 &&
         out->type == kTfLiteInt8 && in->bytes == MODEL_INPUT_BYTES &&
         out->bytes == MODEL_OUTPUT_BYTES &&
         in->params.zero_point == MODEL_INPUT_ZERO_POINT &&
         out->params.zero_point == MODEL_OUTPUT_ZERO_POINT &&
         in->params.scale == MODEL_INPUT_SCALE && out->params.scale == MODEL_OUTPUT_SCALE;
}

int init_once() {
  // Maps the flatbuffer in place (no copy, no parsing yet).
  const tflite::Model *model = tflite::GetModel(g_model_data);
  if (model->version() != TFLITE_SCHEMA_VERSION) {
    return BACKEND_TFLM_ERR_SCHEMA;
  }

  // Function-local statics: constructed on first use (after the Arduino core is up), never
  // destroyed, no heap.
  static tflite::MicroMutableOpResolver<MODEL_OP_COUNT> resolver;
  int status = register_ops(resolver);
  if (status != 0) {
    return status;
  }

  static tflite::MicroInterpreter interpreter(model, resolver, g_arena, kArenaBytes);
  if (interpreter.AllocateTensors() != kTfLiteOk) {
    return BACKEND_TFLM_ERR_ALLOCATE;
  }
  TfLiteTensor *in = interpreter.input(0);
  TfLiteTensor *out = interpreter.output(0);
  if (!tensors_match_meta(in, out)) {
    return BACKEND_TFLM_ERR_TENSORS;
  }
  g_interpreter = &interpreter;
  g_input = in;
  g_output = out;
  return 0;
}

}  // namespace

extern "C" {

int backend_init(void) {
  if (g_init_status == 1) {
    g_init_status = init_once();
  }
  return g_init_status;
}

int8_t *backend_input(void) { return g_input != nullptr ? g_input->data.int8 : nullptr; }

size_t backend_input_bytes(void) { return g_input != nullptr ? g_input->bytes : 0u; }

int backend_invoke(void) {
  if (g_interpreter == nullptr) {
    return -1;
  }
  return g_interpreter->Invoke() == kTfLiteOk ? 0 : -1;
}

const int8_t *backend_output(void) {
  return g_output != nullptr ? g_output->data.int8 : nullptr;
}

size_t backend_output_bytes(void) { return g_output != nullptr ? g_output->bytes : 0u; }

const char *backend_name(void) { return "tflm"; }

size_t backend_arena_bytes(void) { return kArenaBytes; }

// What the allocator really took (persistent + planned tensors), valid after AllocateTensors;
// 0 before a successful init.
size_t backend_arena_used_bytes(void) {
  return g_interpreter != nullptr ? g_interpreter->arena_used_bytes() : 0u;
}

}  // extern "C"
