// TEST-ONLY (tests/tflm_stub/README.md): the fake TFLM's knobs and records, shared by
// fake_tflm.cpp and the test drivers. Not a mirror of any TFLM header.
#pragma once
#include <stddef.h>

#include "tensorflow/lite/c/common.h"

struct FakeTflm {
    TfLiteTensor input;
    TfLiteTensor output;
    bool allocate_fails;    // AllocateTensors reports an arena too small
    bool missing_op;        // AllocateTensors reports an op without a kernel
    bool resolver_refuses;  // every Add* fails
    size_t arena_used;
    int allocate_calls;
    int invoke_calls;
    size_t arena_size_seen;
    const char* registered[64];
    int registered_count;
};
extern FakeTflm g_fake;

// Sets the tensors from model_meta.h and the knobs for mode: "ok", "zero-point" (input zero
// point off by one), "alloc-fail", "missing-op" or "resolver-full". Returns false for an
// unknown mode.
bool fake_tflm_configure(const char* mode);
