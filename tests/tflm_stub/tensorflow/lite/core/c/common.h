// TEST-ONLY stand-in (tests/tflm_stub/README.md) for tensorflow/lite/core/c/common.h: the
// tensor fields the glue reads and the kernel registration type, with the pinned header's names
// and types (the real structs have more fields).
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "tensorflow/lite/core/c/c_api_types.h"

typedef union TfLitePtrUnion {
    int32_t* i32;
    float* f;
    uint8_t* uint8;
    int8_t* int8;
    void* data;
} TfLitePtrUnion;

typedef struct TfLiteTensor {
    TfLiteType type;
    TfLitePtrUnion data;
    TfLiteQuantizationParams params;
    size_t bytes;
} TfLiteTensor;

typedef struct TfLiteRegistration {
    int32_t builtin_code;
    const char* custom_name;
} TfLiteRegistration;
