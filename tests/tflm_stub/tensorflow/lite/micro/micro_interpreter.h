// TEST-ONLY stand-in (tests/tflm_stub/README.md) for tensorflow/lite/micro/micro_interpreter.h:
// the constructor without an ErrorReporter and the members the glue calls, same signatures.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "tensorflow/lite/c/common.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"

#define TFLITE_SCHEMA_VERSION (3)

namespace tflite {

class MicroResourceVariables;
class MicroProfiler;

class MicroInterpreter {
 public:
  MicroInterpreter(const Model* model, const MicroOpResolver& op_resolver,
                   uint8_t* tensor_arena, size_t tensor_arena_size,
                   MicroResourceVariables* resource_variables = nullptr,
                   MicroProfiler* profiler = nullptr);
  ~MicroInterpreter();
  TfLiteStatus AllocateTensors();
  TfLiteStatus Invoke();
  TfLiteTensor* input(size_t index);
  TfLiteTensor* output(size_t index);
  TfLiteStatus initialization_status() const { return kTfLiteOk; }
  size_t arena_used_bytes() const;

 private:
  uint8_t* arena_;
  size_t arena_size_;
};

}  // namespace tflite

// Fake's knobs and records, for the test driver only.
struct FakeTflm {
  TfLiteTensor input;
  TfLiteTensor output;
  bool allocate_fails;
  size_t arena_used;
  int allocate_calls;
  int invoke_calls;
  size_t arena_size_seen;
  const char* registered[64];
  int registered_count;
};
extern FakeTflm g_fake;
