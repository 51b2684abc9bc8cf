// TEST-ONLY driver (tests/tflm_stub/README.md): runs firmware/lib/backend_tflm against the fake
// interpreter with the committed model's generated headers. Usage: check_backend_tflm MODE, MODE
// one of ok, zero-point, alloc-fail. Prints the registered ops one per line ("op AddConv2D"),
// then "result <backend_init()>" and, on checks that fail, "FAIL <what>"; exit status 1 then.
#include <stdio.h>
#include <string.h>

#include "backend_tflm.h"
#include "model_meta.h"
#include "tensorflow/lite/micro/micro_interpreter.h"

static int g_failures = 0;

static void check(bool ok, const char* what) {
  if (!ok) {
    printf("FAIL %s\n", what);
    ++g_failures;
  }
}

int main(int argc, char** argv) {
  const char* mode = argc > 1 ? argv[1] : "ok";
  g_fake.input.type = kTfLiteInt8;
  g_fake.input.bytes = MODEL_INPUT_BYTES;
  g_fake.input.params.scale = MODEL_INPUT_SCALE;
  g_fake.input.params.zero_point = MODEL_INPUT_ZERO_POINT;
  g_fake.output.type = kTfLiteInt8;
  g_fake.output.bytes = MODEL_OUTPUT_BYTES;
  g_fake.output.params.scale = MODEL_OUTPUT_SCALE;
  g_fake.output.params.zero_point = MODEL_OUTPUT_ZERO_POINT;
  g_fake.arena_used = 1234;
  if (strcmp(mode, "zero-point") == 0) {
    g_fake.input.params.zero_point += 1;
  } else if (strcmp(mode, "alloc-fail") == 0) {
    g_fake.allocate_fails = true;
  }

  check(backend_input() == nullptr, "input before init");
  check(backend_arena_used_bytes() == 0, "arena used before init");
  const int result = backend_init();
  for (int i = 0; i < g_fake.registered_count; ++i) {
    printf("op %s\n", g_fake.registered[i]);
  }
  printf("result %d\n", result);
  check(backend_init() == result, "second init returns the first result");
  check(g_fake.allocate_calls == 1, "AllocateTensors called exactly once");
  check(g_fake.arena_size_seen == MODEL_ARENA_BYTES, "arena size from model_meta.h");
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
    check(backend_input() == nullptr && backend_output() == nullptr, "no tensors after failure");
    check(backend_input_bytes() == 0 && backend_output_bytes() == 0, "no sizes after failure");
    check(backend_invoke() != 0 && g_fake.invoke_calls == 0, "invoke refused after failure");
    check(backend_arena_used_bytes() == 0, "arena used after failure");
  }
  return g_failures == 0 ? 0 : 1;
}
