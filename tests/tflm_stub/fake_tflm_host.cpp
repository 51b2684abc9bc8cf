// TEST-ONLY (tests/tflm_stub/README.md): configures the fake TFLM in the host firmware build
// (firmware/ports/host with backend_tflm.cpp) from the environment variable NANO_TFLM_FAKE
// (a fake_tflm_configure mode, default "ok") before main() runs.
#include <stdio.h>
#include <stdlib.h>

#include "fake_tflm.h"

namespace {

bool configure_from_env() {
    const char* mode = getenv("NANO_TFLM_FAKE");
    if (!fake_tflm_configure(mode != nullptr ? mode : "ok")) {
        fprintf(stderr, "error: unknown NANO_TFLM_FAKE mode %s\n", mode);
        exit(2);
    }
    return true;
}

const bool kConfigured = configure_from_env();

}  // namespace
