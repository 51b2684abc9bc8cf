// TEST-ONLY stand-in (tests/tflm_stub/README.md) for tensorflow/lite/micro/micro_log.h: TFLM's
// printf-like log, which formats into a buffer and hands it to DebugLog (then "\r\n").
#pragma once
#include <stdarg.h>

void Log(const char* format, va_list args);
void MicroPrintf(const char* format, ...);
