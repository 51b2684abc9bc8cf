// TEST-ONLY stand-in (tests/tflm_stub/README.md) for tensorflow/lite/core/c/c_api_types.h: the
// enumerators and struct the glue uses, with the pinned header's names and values.
#pragma once
#include <stdint.h>

typedef enum TfLiteStatus { kTfLiteOk = 0, kTfLiteError = 1 } TfLiteStatus;
typedef enum { kTfLiteNoType = 0, kTfLiteFloat32 = 1, kTfLiteInt8 = 9 } TfLiteType;

typedef struct TfLiteQuantizationParams {
    float scale;
    int32_t zero_point;
} TfLiteQuantizationParams;
