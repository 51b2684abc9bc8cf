// TEST-ONLY stand-in (tests/tflm_stub/README.md) for tensorflow/lite/micro/kernels/micro_ops.h:
// the kernel registrations that MicroMutableOpResolver's Add* methods take as defaults.
#pragma once
#include "tensorflow/lite/c/common.h"

namespace tflite {

TfLiteRegistration Register_ADD();
TfLiteRegistration Register_AVERAGE_POOL_2D();
TfLiteRegistration Register_CONV_2D();
TfLiteRegistration Register_DEPTHWISE_CONV_2D();
TfLiteRegistration Register_FULLY_CONNECTED();
TfLiteRegistration Register_MAX_POOL_2D();
TfLiteRegistration Register_MUL();
TfLiteRegistration Register_PAD();
TfLiteRegistration Register_SOFTMAX();

}  // namespace tflite
