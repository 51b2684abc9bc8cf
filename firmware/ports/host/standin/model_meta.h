// TEST-ONLY stand-in model (firmware/ports/host/standin/standin.py), not a model.

#ifndef NANO_TFLM_MODEL_META_H_
#define NANO_TFLM_MODEL_META_H_

#include <stdint.h>

#define MODEL_SHA256 "57a4d1200000e5e5000000000000000000000000000000000000000000000000"
#define MODEL_SHA256_PREFIX "57a4d1200000e5e5"  // what the device reports
#define MODEL_BYTES 0  // flatbuffer size
#define MODEL_PARAMS 0
#define MODEL_MACS 0  // multiply-accumulates per inference

// Input: int8, NHWC. real = scale * (q - zero_point); pixels are uint8 0..255 with
// 0 = background, and kModelInputLut maps them to q exactly as the host does.
#define MODEL_INPUT_DIMS 4
#define MODEL_INPUT_SHAPE {1, 28, 28, 1}
#define MODEL_INPUT_HEIGHT 28
#define MODEL_INPUT_WIDTH 28
#define MODEL_INPUT_CHANNELS 1
#define MODEL_INPUT_BYTES 784
#define MODEL_INPUT_SCALE 0.00392156886f
#define MODEL_INPUT_ZERO_POINT (-128)

// Output: int8 class scores (logits), real = scale * (q - zero_point).
#define MODEL_OUTPUT_DIMS 2
#define MODEL_OUTPUT_SHAPE {1, 10}
#define MODEL_OUTPUT_BYTES 10
#define MODEL_NUM_CLASSES 10
#define MODEL_OUTPUT_SCALE 0.25f
#define MODEL_OUTPUT_ZERO_POINT 0

// TFLM arena: measured with the TFLM reference interpreter on the host (64-bit, recording
// allocator), plus a margin for the pinned 32-bit Arduino library (see export.py).
#define MODEL_ARENA_MEASURED_BYTES 0
#define MODEL_ARENA_BYTES 0

// 1 when the pinned TFLM Arduino library (TFLM of 2023-02-27) computes this model
// exactly: its FULLY_CONNECTED kernel needs per-tensor weights.
#define MODEL_TFLM_EXACT 1

// The ops the model uses, once each: size a MicroMutableOpResolver<MODEL_OP_COUNT> and
// register them with  #define X(add) resolver.add();  MODEL_OPS(X)
#define MODEL_OP_COUNT 0
#define MODEL_OPS(X) 

// uint8 pixel -> int8 input, computed by trainer.reference.input_lut.
static const int8_t kModelInputLut[256] = {
    -128, -127, -126, -125, -124, -123, -122, -121, -120, -119, -118, -117, -116, -115, -114, -113,
    -112, -111, -110, -109, -108, -107, -106, -105, -104, -103, -102, -101, -100, -99, -98, -97,
    -96, -95, -94, -93, -92, -91, -90, -89, -88, -87, -86, -85, -84, -83, -82, -81,
    -80, -79, -78, -77, -76, -75, -74, -73, -72, -71, -70, -69, -68, -67, -66, -65,
    -64, -63, -62, -61, -60, -59, -58, -57, -56, -55, -54, -53, -52, -51, -50, -49,
    -48, -47, -46, -45, -44, -43, -42, -41, -40, -39, -38, -37, -36, -35, -34, -33,
    -32, -31, -30, -29, -28, -27, -26, -25, -24, -23, -22, -21, -20, -19, -18, -17,
    -16, -15, -14, -13, -12, -11, -10, -9, -8, -7, -6, -5, -4, -3, -2, -1,
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
    16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31,
    32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47,
    48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63,
    64, 65, 66, 67, 68, 69, 70, 71, 72, 73, 74, 75, 76, 77, 78, 79,
    80, 81, 82, 83, 84, 85, 86, 87, 88, 89, 90, 91, 92, 93, 94, 95,
    96, 97, 98, 99, 100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111,
    112, 113, 114, 115, 116, 117, 118, 119, 120, 121, 122, 123, 124, 125, 126, 127,
};

static const char *const kModelLabels[10] = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};

#endif  // NANO_TFLM_MODEL_META_H_
