// TEST-ONLY stand-in (tests/tflm_stub/README.md) for tensorflow/lite/micro/micro_interpreter.h:
// both constructors exactly as at the pinned commit (no ErrorReporter; the profiler is a
// MicroProfilerInterface) and the members the glue calls, same signatures.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "tensorflow/lite/c/common.h"
#include "tensorflow/lite/micro/micro_allocator.h"
#include "tensorflow/lite/micro/micro_op_resolver.h"
#include "tensorflow/lite/micro/micro_profiler_interface.h"
#include "tensorflow/lite/micro/micro_resource_variable.h"
#include "tensorflow/lite/schema/schema_generated.h"

#define TFLITE_SCHEMA_VERSION (3)

namespace tflite {

class MicroInterpreter {
  public:
    MicroInterpreter(const Model* model, const MicroOpResolver& op_resolver, uint8_t* tensor_arena,
                     size_t tensor_arena_size, MicroResourceVariables* resource_variables = nullptr,
                     MicroProfilerInterface* profiler = nullptr);

    MicroInterpreter(const Model* model, const MicroOpResolver& op_resolver,
                     MicroAllocator* allocator,
                     MicroResourceVariables* resource_variables = nullptr,
                     MicroProfilerInterface* profiler = nullptr);

    ~MicroInterpreter();

    TfLiteStatus AllocateTensors();
    TfLiteStatus Invoke();
    TfLiteTensor* input(size_t index);
    TfLiteTensor* output(size_t index);
    TfLiteStatus initialization_status() const;
    size_t arena_used_bytes() const;

  private:
    uint8_t* arena_;
    size_t arena_size_;
};

}  // namespace tflite
