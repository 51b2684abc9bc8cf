// TEST-ONLY stand-in (tests/tflm_stub/README.md) for tensorflow/lite/micro/debug_log.h: the
// platform's text output. The pinned library defines it in system_setup.cpp (Serial.print on
// the Nano 33 BLE); the stand-in's definition is in fake_system_setup.cpp.
#pragma once

#ifdef __cplusplus
extern "C" {
#endif

void DebugLog(const char* s);

#ifdef __cplusplus
}
#endif
