// TEST-ONLY stand-in (tests/tflm_stub/README.md) for tensorflow/lite/schema/schema_generated.h.
#pragma once
#include <stdint.h>

namespace tflite {
struct Model {
    uint32_t version() const {
        return version_;
    }
    uint32_t version_;
};
// Real: inline const tflite::Model *GetModel(const void *buf). The fake checks the flatbuffer's
// file identifier ("TFL3" at byte 4) so a wrong buffer is caught.
const Model* GetModel(const void* buf);
}  // namespace tflite
