// TEST-ONLY stand-in (tests/tflm_stub/README.md) for tensorflow/lite/micro/micro_op_resolver.h:
// the interface MicroInterpreter takes (its lookup methods are left out: the glue calls none).
#pragma once

namespace tflite {

class MicroOpResolver {
  public:
    virtual ~MicroOpResolver() {}
};

}  // namespace tflite
