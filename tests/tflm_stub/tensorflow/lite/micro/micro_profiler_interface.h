// TEST-ONLY stand-in (tests/tflm_stub/README.md) for
// tensorflow/lite/micro/micro_profiler_interface.h.
#pragma once
#include <stdint.h>

namespace tflite {

class MicroProfilerInterface {
  public:
    virtual ~MicroProfilerInterface() {}
    virtual uint32_t BeginEvent(const char* tag) = 0;
    virtual void EndEvent(uint32_t event_handle) = 0;
};

}  // namespace tflite
