// TEST-ONLY driver (tests/tflm_stub/README.md): runs firmware/lib/backend_tflm against the fake
// interpreter with the committed model's generated headers, linked like the board with
// -Wl,--wrap=DebugLog. Usage: check_backend_tflm MODE, MODE as in fake_tflm_configure. Prints
// the registered ops one per line ("op AddConv2D"), every log line the glue sends ("log ..."),
// "result <backend_init()>", "error <backend_init_error()>" and, on checks that fail,
// "FAIL <what>"; exit status 1 then.
#include <stdio.h>
#include <string.h>

#include "backend_tflm.h"
#include "core.h"
#include "fake_tflm.h"
#include "model_meta.h"
#include "tensorflow/lite/micro/micro_interpreter.h"

// The benchcore's core_log, which the glue calls for each TFLM message.
extern "C" void core_log(const char* text) {
    printf("log %s\n", text);
}

static int g_failures = 0;

static void check(bool ok, const char* what) {
    if (!ok) {
        printf("FAIL %s\n", what);
        ++g_failures;
    }
}

int main(int argc, char** argv) {
    const char* mode = argc > 1 ? argv[1] : "ok";
    if (!fake_tflm_configure(mode)) {
        printf("FAIL unknown mode %s\n", mode);
        return 1;
    }

    check(backend_input() == nullptr, "input before init");
    check(backend_arena_used_bytes() == 0, "arena used before init");
    const int result = backend_init();
    for (int i = 0; i < g_fake.registered_count; ++i) {
        printf("op %s\n", g_fake.registered[i]);
    }
    printf("result %d\n", result);
    printf("error %s\n", backend_init_error());
    check((result == 0) == (backend_init_error()[0] == '\0'), "init error text iff init failed");
    check(backend_init() == result, "second init returns the first result");
    // A resolver failure stops init before the interpreter exists.
    const int allocations = g_fake.resolver_refuses ? 0 : 1;
    check(g_fake.allocate_calls == allocations, "AllocateTensors called at most once");
    check(g_fake.arena_size_seen == (allocations ? MODEL_ARENA_BYTES : 0u),
          "arena size from model_meta.h");
    check(backend_arena_bytes() == MODEL_ARENA_BYTES, "backend_arena_bytes");
    check(strcmp(backend_name(), "tflm") == 0, "backend_name");
    if (result == 0) {
        check(backend_input() == g_fake.input.data.int8, "input tensor");
        check(backend_input_bytes() == MODEL_INPUT_BYTES, "input bytes");
        check(backend_output() == g_fake.output.data.int8, "output tensor");
        check(backend_output_bytes() == MODEL_OUTPUT_BYTES, "output bytes");
        check(backend_invoke() == 0 && g_fake.invoke_calls == 1, "invoke");
        check(backend_arena_used_bytes() == 1234, "arena_used_bytes from the interpreter");
    } else {
        check(backend_input() == nullptr && backend_output() == nullptr,
              "no tensors after failure");
        check(backend_input_bytes() == 0 && backend_output_bytes() == 0, "no sizes after failure");
        check(backend_invoke() != 0 && g_fake.invoke_calls == 0, "invoke refused after failure");
        check(backend_arena_used_bytes() == 0, "arena used after failure");
    }
    return g_failures == 0 ? 0 : 1;
}
