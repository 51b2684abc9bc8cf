// TEST-ONLY fake of the few TFLM functions the glue calls (tests/tflm_stub/README.md).
#include <string.h>

#include "tensorflow/lite/micro/micro_interpreter.h"

FakeTflm g_fake;

TfLiteStatus fake_register(const char* name, unsigned int capacity, unsigned int* count) {
  for (int i = 0; i < g_fake.registered_count; ++i) {
    if (strcmp(g_fake.registered[i], name) == 0) {
      return kTfLiteError;  // the real resolver refuses an op twice
    }
  }
  if (*count >= capacity || g_fake.registered_count >= 64) {
    return kTfLiteError;  // resolver too small
  }
  g_fake.registered[g_fake.registered_count++] = name;
  ++*count;
  return kTfLiteOk;
}

namespace tflite {

TfLiteRegistration Register_FULLY_CONNECTED() { return TfLiteRegistration{1}; }
TfLiteRegistration Register_SOFTMAX() { return TfLiteRegistration{2}; }

const Model* GetModel(const void* buf) {
  static Model model{TFLITE_SCHEMA_VERSION};
  static Model wrong{0};
  const unsigned char* b = static_cast<const unsigned char*>(buf);
  return memcmp(b + 4, "TFL3", 4) == 0 ? &model : &wrong;
}

MicroInterpreter::MicroInterpreter(const Model* model, const MicroOpResolver& op_resolver,
                                   uint8_t* tensor_arena, size_t tensor_arena_size,
                                   MicroResourceVariables* resource_variables,
                                   MicroProfiler* profiler)
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
  if (g_fake.allocate_fails) {
    return kTfLiteError;
  }
  // Tensors live in the arena, as in TFLM.
  g_fake.input.data.int8 = reinterpret_cast<int8_t*>(arena_);
  g_fake.output.data.int8 = reinterpret_cast<int8_t*>(arena_ + g_fake.input.bytes);
  return g_fake.input.bytes + g_fake.output.bytes <= arena_size_ ? kTfLiteOk : kTfLiteError;
}

TfLiteStatus MicroInterpreter::Invoke() {
  ++g_fake.invoke_calls;
  return kTfLiteOk;
}

TfLiteTensor* MicroInterpreter::input(size_t index) { return index == 0 ? &g_fake.input : nullptr; }

TfLiteTensor* MicroInterpreter::output(size_t index) {
  return index == 0 ? &g_fake.output : nullptr;
}

size_t MicroInterpreter::arena_used_bytes() const { return g_fake.arena_used; }

}  // namespace tflite
