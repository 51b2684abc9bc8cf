// TEST-ONLY stand-in (tests/tflm_stub/README.md) for tensorflow/lite/micro/micro_allocator.h:
// the class name only (the glue uses the arena constructor, not an allocator).
#pragma once

namespace tflite {
class MicroAllocator;
}  // namespace tflite
