// TEST-ONLY stand-in (tests/tflm_stub/README.md) for
// tensorflow/lite/micro/micro_resource_variable.h: the class name only (the glue passes none).
#pragma once

namespace tflite {
class MicroResourceVariables;
}  // namespace tflite
