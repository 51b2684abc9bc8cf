// TEST-ONLY stand-in (tests/tflm_stub/README.md) for tensorflow/lite/c/common.h, which at the
// pinned commit only forwards to the core header.
#pragma once
#include "tensorflow/lite/core/c/common.h"
